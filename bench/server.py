"""Serve one ASGI app the way the product does: ``service.serve.serve`` (uvicorn, one worker).

``python -m bench.server APP PORT [CERTFILE KEYFILE]``; HTTPS when a certificate is given. Logs go to
stderr as JSON, as in production (the caller points stderr at a file).
"""

from __future__ import annotations

import sys

from service.serve import serve


def main(argv: list[str]) -> None:
    app, port = argv[0], int(argv[1])
    certfile, keyfile = (argv[2], argv[3]) if len(argv) >= 4 else (None, None)
    serve(app, "127.0.0.1", port, certfile=certfile, keyfile=keyfile, log_format="json")


if __name__ == "__main__":
    main(sys.argv[1:])
