"""The browser test of examples/app.py needs gradio, selenium and Debian's chromium and chromium-driver, so it is
not part of `make test`: `pytest tests` skips this folder, and `make test-ui` runs the file by name
(`pytest tests/ui/test_app_ui.py`; a path named on the command line is always collected)."""

collect_ignore = ["test_app_ui.py"]
