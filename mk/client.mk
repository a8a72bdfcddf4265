# Client area: the Python SDK and `timbr` CLI (clients/python, installed by the venv step) and the
# results page, whose test drives Debian's headless chromium through chromedriver (tests/apt-packages.txt).
.PHONY: apt-test

apt-test: $(VENV)/.apt-test-stamp
$(VENV)/.apt-test-stamp: tests/apt-packages.txt
	$(call apt_install,tests/apt-packages.txt)

test: apt-test
