"""One call per upstream through a client service, and what the service answered each:
``ask`` for a test, or, run as kpy's traffic, for the URLs in VERDICT_URLS (JSON: case ->
URL) to the service at KPY_PORT, the answers written as JSON to VERDICT_FILE."""

from __future__ import annotations

import http.client
import json
import os


def ask(port: int, urls: dict[str, str]) -> dict[str, list[object]]:
    """case -> [the service's status, its JSON answer], each call sent to its URL."""
    answers: dict[str, list[object]] = {}
    for case, url in urls.items():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/call", b'{"n": 1}', {"X-Upstream-Url": url})
        response = connection.getresponse()
        answers[case] = [response.status, json.loads(response.read())]
        connection.close()
    return answers


if __name__ == "__main__":
    got = ask(int(os.environ["KPY_PORT"]), json.loads(os.environ["VERDICT_URLS"]))
    with open(os.environ["VERDICT_FILE"], "w") as out:
        json.dump(got, out)
