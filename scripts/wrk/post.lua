-- foobar_ops bench-web: POST /api/items with a JSON body
wrk.method = "POST"
wrk.body = '{"name": "bench", "description": "made by make bench-web"}'
wrk.headers["Content-Type"] = "application/json"
dofile(os.getenv("FOOBAR_WRK_REPORT"))
