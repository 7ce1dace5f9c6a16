"""Text-to-video search: embed videos into a safetensors index on disk, then rank its clips for a text query.

`index` builds and extends an index (incremental, resumable); `examples/search_videos.py` is its command line and
`modeling_eva02at.hub.app` serves it in a Gradio app (docs/search_and_app.md).
"""
