"""Text-to-video search: embed videos into a safetensors index on disk, then rank its clips for a text query.

`sources` plans what goes into an index (a folder of videos, an EK-100 CSV), `store` is the index on disk, `build`
encodes and queries it, `preview` cuts playable clips out of hits, and `cli` holds the arguments of
`examples/index_videos.py` and `examples/search_videos.py`. `modeling_eva02at.app` serves an index in a Gradio app
(docs/search_and_app.md).
"""
