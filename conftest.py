"""Root conftest: marks the rootdir (lab.yaml and testcases/ are found from here).

apflab's pytest plugin is loaded through its entry point (pyproject.toml); nothing
else belongs at the root.
"""

collect_ignore = ["guest_payloads", "reports", "bench", "targets"]
