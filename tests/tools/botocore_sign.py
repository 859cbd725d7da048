"""Signs a request with botocore's SigV4 implementation, for the interop tests.

Reads a JSON object on stdin: method, url, headers, body, access_key, secret,
region, and optionally presign_expires. Prints the headers to send (header
form) or the presigned URL (query form) as JSON.
"""
import json
import sys

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> None:
    spec = json.load(sys.stdin)
    body = spec.get("body", "").encode()
    req = AWSRequest(method=spec["method"], url=spec["url"], data=body, headers=spec.get("headers", {}))
    creds = Credentials(spec["access_key"], spec["secret"])
    if "presign_expires" in spec:
        SigV4QueryAuth(creds, "berth", spec["region"], expires=spec["presign_expires"]).add_auth(req)
        print(json.dumps({"url": req.url}))
    else:
        SigV4Auth(creds, "berth", spec["region"]).add_auth(req)
        print(json.dumps({"headers": dict(req.headers.items())}))


if __name__ == "__main__":
    main()
