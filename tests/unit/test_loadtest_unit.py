"""A load test's result as a notebook shows it: its latency over time and its shares, drawn."""

from __future__ import annotations

from foobar_ops.stack.loadtest import LoadTest

HISTORY = """Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
1764190800,16,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
1764190800,16,GET,/,410.0,0.0,9,10,11,12,14,16,18,19,25,25,25
1764190801,16,,Aggregated,820.5,0.0,8,9,10,11,13,15,17,18,30,30,30
1764190803,16,,Aggregated,1010.2,0.0,7,8,9,10,12,14,16,20,31,31,31
"""


def a_run(tmp_path) -> LoadTest:
    (tmp_path / "locust_stats_history.csv").write_text(HISTORY)
    return LoadTest(
        "round-robin",
        "lt-1",
        verdict="pass",
        servers={
            "web-01": {"requests": 510, "share": 0.5, "lbtot": 511},
            "web-02": {"requests": 508, "share": 0.5, "lbtot": 508},
        },
        db_nodes={"web-01": {"reads": 300, "share": 0.6}, "web-02": {"reads": 200, "share": 0.4}},
        rps=1010.2,
        folder=str(tmp_path),
    )


def test_latency_history_is_the_aggregated_percentiles_from_the_run_start(tmp_path):
    history = a_run(tmp_path).latency_history()
    assert list(history.columns) == ["t", "p50", "p95", "p99"]
    assert history["t"].tolist() == [0, 1, 3]  # seconds, the per-request rows left out
    assert history["p95"].isna().tolist() == [True, False, False]  # Locust's N/A before any answer
    assert history["p99"].tolist()[1:] == [18, 20]


def test_the_plots_draw_and_the_shares_table_is_returned(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    run = a_run(tmp_path)
    servers = run.plot_shares()
    assert servers.loc["web-01", "lbtot"] == 511 and list(servers.index) == ["web-01", "web-02"]
    run.plot_latency()
    assert len(shown) == 2
    latency = shown[1].axes[0]
    assert [line.get_label() for line in latency.get_lines()] == ["p50", "p95", "p99"]
    assert "1010 req/s" in latency.get_title()
    plt.close("all")


def test_workers_on_takes_only_load_generators_named_once(tmp_path, monkeypatch):
    import pytest

    from foobar_ops.core.errors import LoadTestError
    from foobar_ops.stack import load_inventory
    from foobar_ops.stack.loadtest import check_workers_on

    from .inventories import lab_doc, write_doc

    for name in ("TEST_DB_PW", "TEST_REPL_PW", "TEST_SUDO"):
        monkeypatch.setenv(name, "a-long-enough-secret-value-" + name.lower())
    inv = load_inventory(write_doc(tmp_path, lab_doc()))
    assert [h.name for h in check_workers_on(inv, ["loadgen-02", "loadgen-01"], 0)] == ["loadgen-02", "loadgen-01"]
    for names, words in (
        (["web-01"], "'web-01': not a load generator"),
        (["loadgen-01; reboot"], "not a load generator"),
        (["loadgen-01", "loadgen-01"], "name each load generator once"),
        ([], "name load generators"),
    ):
        with pytest.raises(LoadTestError, match=words):
            check_workers_on(inv, names, 0)
    with pytest.raises(LoadTestError, match="not both"):
        check_workers_on(inv, ["loadgen-01"], 2)


def test_an_empty_workers_on_is_refused_not_run_locally():
    from tests.conftest import run_cli

    for given in ("", ","):
        done = run_cli("loadtest", "round-robin", "-i", "inventories/lab.yml", "--workers-on", given)
        assert done.code == 2 and "name load generators" in done.err, done
