"""foobar.com: a small web application served by gunicorn behind Nginx."""

__version__ = "1.0.0"
