#!/usr/bin/env python3
"""A tiny CloudEvents sink for the README tour: prints each event and answers 202.

    python3 config/examples/sink.py 9090
"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        attrs = {k[3:]: v for k, v in self.headers.items() if k.lower().startswith("ce-")}
        print(f"{self.path} {attrs} {body.decode(errors='replace')}", flush=True)
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9090), Sink).serve_forever()
