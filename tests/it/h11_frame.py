"""Frames HTTP/1.1 request streams with h11, the reference parser of the differential test
(tests/it/http_differential.rs). h11 is a pure-Python HTTP/1.1 implementation that no one here
wrote: `pip install h11`.

Reads a file of JSON lines, one case each: {"hex": "<the bytes a client sent>"}. Writes one JSON
line per case, in order: the requests h11 framed from those bytes, as server, each answered
(h11 frames the next request only once the last one is answered), and how the stream ended:
  {"requests": [{"method", "target", "version", "headers": [[name, value]...], "body"}...],
   "end": "more" | "closed" | "reject"}
Names are lowercased (h11 lowercases them), values and bodies are hex. "more": the bytes end
between or inside requests; "closed": the last request ends the connection; "reject": h11 raised
RemoteProtocolError.
"""

import json
import sys

import h11


def frame(data):
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    requests, current = [], None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return requests, "reject"
        if event is h11.NEED_DATA:
            return requests, "more"
        if isinstance(event, h11.Request):
            current = {
                "method": event.method.decode("latin-1"),
                "target": event.target.decode("latin-1"),
                "version": event.http_version.decode("latin-1"),
                "headers": [[name.decode("latin-1"), value.hex()] for name, value in event.headers],
                "body": "",
            }
        elif isinstance(event, h11.Data):
            current["body"] += bytes(event.data).hex()
        elif isinstance(event, h11.EndOfMessage):
            requests.append(current)
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return requests, "closed"
            conn.start_next_cycle()
        else:
            # PAUSED or ConnectionClosed: nothing more is read from this connection.
            return requests, "closed"


def main():
    with open(sys.argv[1]) as cases, open(sys.argv[2], "w") as out:
        for line in cases:
            requests, end = frame(bytes.fromhex(json.loads(line)["hex"]))
            out.write(json.dumps({"requests": requests, "end": end}) + "\n")


if __name__ == "__main__":
    main()
