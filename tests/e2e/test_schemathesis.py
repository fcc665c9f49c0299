"""schemathesis against our own OpenAPI documents, on a real federation and a real member (issue 18).

For every group-version document a server publishes at ``/openapi/v3``, schemathesis sends
the documented examples and a bounded number of generated requests per operation and checks
that no answer is a server error, every status code and content type is the one documented,
and every response body conforms to its declared schema (a list is its ``<Kind>List``, an
error a ``Status``). Bounded: a fixed number of examples per operation, a time limit per
document, a fixed seed so a failure can be replayed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clusters.testing import http
from tests.conftest import one_server

SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
pytestmark = pytest.mark.skipif(SCHEMATHESIS is None, reason="schemathesis is not installed")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module", params=["federation", "member"])
def server(request, tmp_path_factory):
    with one_server(request.param, tmp_path_factory.mktemp("schemathesis"), "aws-schema-1") as url:
        yield url


@pytest.mark.timeout(600)
def test_every_document_holds_for_what_the_server_answers(server, tmp_path):
    documents = sorted(http("GET", server + "/openapi/v3")[1]["paths"])
    assert "api/v1" in documents
    runs = {doc: subprocess.Popen(
        [SCHEMATHESIS, "run", f"{server}/openapi/v3/{doc}", "--url", server, "--checks", CHECKS,
         "--phases", "examples,fuzzing", "--max-examples", "4", "--max-time", "12", "--seed", "1106",
         "--workers", "1", "--no-color"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path) for doc in documents}
    failed = []
    for doc, run in runs.items():
        out, _ = run.communicate(timeout=180)
        if run.returncode != 0:
            failed.append(f"--- {doc}\n{out[-4000:]}")
    assert not failed, "\n".join(failed)
