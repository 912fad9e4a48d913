"""Start moto's S3 server on :5000, create the buckets named in S3_BUCKETS, then mark ready
(/tmp/ready, which the healthcheck tests) and serve until stopped."""

import os
import signal
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="0.0.0.0", port=5000)
server.start()
client = boto3.client(
    "s3",
    endpoint_url="http://127.0.0.1:5000",
    region_name="us-east-1",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
for bucket in os.environ.get("S3_BUCKETS", "").split():
    client.create_bucket(Bucket=bucket)
    print(f"created bucket {bucket}", flush=True)
Path("/tmp/ready").touch()
print("moto S3 ready on :5000", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
server.stop()
