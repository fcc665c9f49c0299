"""A kopf operator for tests/e2e/test_kopf.py: it records each Service it sees created and
deleted in the file $KOPF_OUT. kopf holds a deletion with its finalizer until the delete
handler has run, so "deleted" appears only if the server honours finalizers."""

import kopf, pathlib, os

OUT = pathlib.Path(os.environ["KOPF_OUT"])

@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = "example.com/kopf-finalizer"
    settings.posting.enabled = False
    settings.watching.server_timeout = 10

@kopf.on.create("v1", "services")
def created(name, **_):
    with OUT.open("a") as f:
        f.write(f"created {name}\n")

@kopf.on.delete("v1", "services")
def deleted(name, **_):
    with OUT.open("a") as f:
        f.write(f"deleted {name}\n")
