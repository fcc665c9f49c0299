"""The live web dashboard the federation API server serves at ``/ui/`` (issue 17).

Static files (``static/``: plain HTML, JS and CSS, no build step) that read the federation
from the watch API with the user's own bearer token, plus the two things a browser cannot
do by itself, served under ``/ui/api/`` behind the same authentication:
:mod:`federation.ui.dnsanswers` asks the real DNS responder what each level answers, and
:mod:`federation.ui.routes` forwards fault buttons to the launcher's fault API.
"""
