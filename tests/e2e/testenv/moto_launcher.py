"""Starts moto's server (same arguments as moto_server) with the AWS model of aws_model.py loaded.

    python moto_launcher.py -H 127.0.0.1 -p PORT

MOLECULE_AWS_MODEL (a profile name, "off" or "realistic", or a JSON object) configures the model at
start; unset means off. At run time: GET /__aws_model shows the configuration, POST /__aws_model
with a JSON object merges into it (400 on a bad one). Listing lag applies only to calls carrying
the header X-Molecule-Via-Proxy: 1 (the fault proxy adds it), so direct calls see the ground truth. POST /moto-api/reset also forgets the
model's tokens and timestamps. GET /__aws_model/launched?after=N lists the instances launched after
journal sequence number N (the bootstrap simulator's feed; see aws_model.launched).
{"eventsQueueUrl": "<a queue of this moto>"} makes moto publish the
EC2 notifications EventBridge would (instance state and tag changes) to that queue.
"""

import json
import os
import sys
from urllib.parse import parse_qs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aws_model  # noqa: E402
import moto.server  # noqa: E402

CONTROL_PATH = "/__aws_model"


def _reply(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def with_model_control(app):
    """WSGI middleware: serves CONTROL_PATH and hooks moto's reset; the rest goes to moto."""

    def middleware(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == CONTROL_PATH and method == "GET":
            return _reply(start_response, "200 OK", aws_model.config())
        if path == CONTROL_PATH + "/launched" and method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            try:
                after = int(query.get("after", ["0"])[0])
            except ValueError:
                return _reply(start_response, "400 Bad Request", {"error": "after: expected an integer"})
            return _reply(start_response, "200 OK", aws_model.launched(after))
        if path == CONTROL_PATH and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                update = json.loads(environ["wsgi.input"].read(length) or b"{}")
                return _reply(start_response, "200 OK", aws_model.configure(update))
            except (ValueError, aws_model.ModelError) as e:
                return _reply(start_response, "400 Bad Request", {"error": str(e)})
        if path == "/moto-api/reset" and method == "POST":
            aws_model.reset()
        aws_model.set_lagging_view(environ.get("HTTP_X_MOLECULE_VIA_PROXY") == "1")
        return app(environ, start_response)

    return middleware


def main():
    aws_model.install()
    setting = os.environ.get("MOLECULE_AWS_MODEL", "").strip()
    if setting:
        aws_model.configure(json.loads(setting) if setting.startswith("{") else setting)
    print(f"moto_launcher: AWS model {json.dumps(aws_model.config())}", file=sys.stderr, flush=True)
    run_simple = moto.server.run_simple
    moto.server.run_simple = lambda host, port, app, **kw: run_simple(host, port, with_model_control(app), **kw)
    moto.server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
