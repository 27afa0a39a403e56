"""Rendering from OME-Zarr volumes on S3, against a real local S3 server (moto).

A public bucket is read with unsigned requests when no credentials exist, and the cloud
instance-metadata service is never asked (it is pointed at a local server that counts
its requests); a private bucket is read with the credentials of the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, moto_server
from scrollzarr import serve
from test_remote import LAYERS, outputs, papyrus, public_store, segment

PUBLIC = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
    "Resource": ["arn:aws:s3:::public-scrolls", "arn:aws:s3:::public-scrolls/*"]}]}


def _clean_env(tmp_path: Path, **extra) -> dict:
    """The environment without any AWS setting of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
               AWS_CONFIG_FILE=str(tmp_path / "no-config"), **extra)
    return env


@pytest.fixture
def moto(tmp_path):
    """A moto S3 server holding the same published-style store in a public and in a
    private bucket; yields (endpoint, local store, segment, kill)."""
    with moto_server(tmp_path) as (endpoint, proc):
        import boto3
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        store = public_store(tmp_path / "scroll.zarr", papyrus())
        for bucket in ("public-scrolls", "private-scrolls"):
            s3.create_bucket(Bucket=bucket)
            for path in store.rglob("*"):
                if path.is_file():
                    key = "scans/scroll.zarr/" + path.relative_to(store).as_posix()
                    s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        s3.put_bucket_policy(Bucket="public-scrolls", Policy=json.dumps(PUBLIC))

        def kill():
            proc.kill()
            proc.wait()
        yield endpoint, store, segment(tmp_path / "seg.ppm"), kill


def render(ppm, store, out: Path, env: dict, *extra):
    return subprocess.run([sys.executable, str(ROOT / "ppm_to_layers.py"), str(ppm),
                           str(store), str(out), str(out / "stack.tif"), *LAYERS,
                           *map(str, extra)], capture_output=True, text=True, env=env,
                          timeout=600)


def test_public_bucket_unsigned_equals_local_never_asks_instance_metadata_and_caches(
        moto, tmp_path):
    endpoint, store, ppm, kill = moto
    imds = serve.StoreServer(tmp_path)  # stands in for 169.254.169.254
    imds.start()
    try:
        env = _clean_env(tmp_path, AWS_ENDPOINT_URL=endpoint,
                         AWS_EC2_METADATA_SERVICE_ENDPOINT=imds.url)
        local = render(ppm, store, tmp_path / "local", env)
        assert local.returncode == 0, local.stderr
        cache = ("--cache_dir", tmp_path / "cache")
        url = "s3://public-scrolls/scans/scroll.zarr"
        proc = render(ppm, url, tmp_path / "out1", env, *cache)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # --quiet, and no warning about open sessions
        assert outputs(tmp_path / "out1") == outputs(tmp_path / "local")
        assert imds.requests_seen == []
        # the second render needs no server at all
        kill()
        proc = render(ppm, url, tmp_path / "out2", env, *cache)
        assert proc.returncode == 0, proc.stderr
        assert outputs(tmp_path / "out2") == outputs(tmp_path / "local")
        # ... while one that is not cached fails in one line
        proc = render(ppm, url, tmp_path / "out3", env, "--cache_dir", tmp_path / "c2")
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: s3://public-scrolls/scans/scroll.zarr/")
        assert len(proc.stderr.strip().splitlines()) == 1
        assert imds.requests_seen == []
    finally:
        imds.stop()


def test_private_bucket_needs_credentials_and_reads_with_them(moto, tmp_path):
    endpoint, store, ppm, _ = moto
    url = "s3://private-scrolls/scans/scroll.zarr"
    env = _clean_env(tmp_path, AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1")
    denied = render(ppm, url, tmp_path / "denied", env, "--cache_dir", tmp_path / "c1")
    assert denied.returncode == 1 and len(denied.stderr.strip().splitlines()) == 1
    assert "access denied" in denied.stderr and "AWS credentials" in denied.stderr
    assert not (tmp_path / "denied").exists() or not list((tmp_path / "denied").iterdir())
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    proc = render(ppm, url, tmp_path / "out", env, "--cache_dir", tmp_path / "c2")
    assert proc.returncode == 0, proc.stderr
    local = render(ppm, store, tmp_path / "local", env)
    assert local.returncode == 0, local.stderr
    assert outputs(tmp_path / "out") == outputs(tmp_path / "local")
