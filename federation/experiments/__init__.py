"""Failover experiments (issue 5): run a named scenario against a fresh local federation.

``ubernetes experiment run FILE`` brings up a federation of real processes on free ports
(:class:`federation.launch.localfed.LocalFederation`), runs the scenario's timed faults and heals
while probes watch DNS and real clients, tears everything down and writes events.jsonl,
summary.json, report.md and timeline.png. The parts, one module each:

- ``scenario``: the YAML format, its checks, the fast form and the comparison profiles;
- ``faults``: what each fault and heal does to a running federation;
- ``probes``: the DNS prober, the TTL-honouring stub resolver and the client prober;
- ``runner``: one run (and ``--repeat``), with a progress bar, writing events;
- ``analysis``: pure: events in, figures and expectation verdicts out;
- ``report``: summary.json and report.md; ``plot``: timeline.png (matplotlib, optional);
- ``command``: the ``ubernetes experiment`` click group.
"""
