"""The Gradio app (zero-shot classification and text-to-video search over an index) and the Hugging Face Space that
runs it: `backend` does the work, `ui` lays it out and launches it (examples/app.py), `space` assembles and pushes a
Space folder (examples/push_space.py). gradio is an optional extra: `pip install 'modeling-eva02at[app]'`.
"""
