"""policywatch's stages, a package each; `docs/design.md` draws them with their tables.

crawl -> extract -> claims / stance (run together by analyse) -> store -> alerts, report.
A package's `__init__` names its public surface; other packages import only that.
"""
