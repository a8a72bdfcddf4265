# Held-out evaluation audio (bench/heldout/sources.py): real recordings from Debian packages,
# fetched with apt-get download + dpkg -x into var/heldout/ (no root, nothing committed).
.PHONY: heldout-data

heldout-data: var/heldout/.stamp

var/heldout/.stamp: bench/heldout/sources.py | venv
	$(PY) -c "from bench.heldout import sources; print(sources.ensure())"
	touch $@
