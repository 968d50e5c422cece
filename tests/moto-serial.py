"""moto's server mode, answering one request at a time: python moto-serial.py HOST PORT.

DynamoDB applies a conditional write atomically. moto's own `moto_server` is threaded and checks a
condition and writes in two steps, so two racing `put_if_absent` calls could both win against it
(the store contract suite saw it happen). One request at a time gives the suite the atomicity of
the real service; the suite's requests are small, so this costs little.
"""
import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
run_simple(
    host,
    port,
    DomainDispatcherApplication(create_backend_app),
    threaded=False,
    request_handler=MotoRequestHandler,
)
