"""How the locustfiles reach the site over https: the certificate is verified, for the site's name
(FOOBAR_SITE, also the SNI) whatever address the URL names (the floating address), against the CA
file FOOBAR_SITE_CA (the lab's CA; default: the system's CAs). Verification is never turned off."""

from __future__ import annotations

import os

from gevent import ssl

SITE = os.environ.get("FOOBAR_SITE", "foobar.com")
CA = os.environ.get("FOOBAR_SITE_CA") or None


class SiteContext(ssl.SSLContext):
    """A client context that speaks to every address as the site."""

    def wrap_socket(self, sock, *args, **kwargs):
        kwargs["server_hostname"] = SITE
        return super().wrap_socket(sock, *args, **kwargs)


def site_context(*args, **kwargs):
    """FastHttpUser's ssl_context_factory: verifies the site's certificate and name."""
    context = SiteContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    if CA:
        context.load_verify_locations(cafile=CA)
    else:
        context.load_default_certs()
    return context
