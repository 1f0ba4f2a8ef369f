# Real hosts (issue 8): what the host specs need built before they run.
.PHONY: hosts-prep
hosts-prep:
