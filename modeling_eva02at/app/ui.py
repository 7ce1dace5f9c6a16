"""A Gradio app for an EVA02-AT model: `examples/app.py` runs it locally, and a Hugging Face Space assembled by
`modeling_eva02at.app.space` (examples/push_space.py) runs it from a copy of this package (`modeling_eva02at.app.cli`
holds the arguments of both).

    pip install -e '.[app]'
    python examples/app.py --model eva02at-b16 --index my_index/ --examples my_videos/ --port 7860

Two tabs:

* **Zero-shot classification**: upload a video (or pick an example), type comma-separated labels, and see the scores
  of the model's `zero-shot-video-classification` pipeline as a bar chart;
* **Search**: type what happens and see the best clips of an index made by `examples/index_videos.py`, each cut out
  of its video as a playable preview.

The defaults of --model, --index and --examples come from the environment (EVA02AT_MODEL, EVA02AT_INDEX,
EVA02AT_EXAMPLES: a Space's launcher sets them) and on a Space gradio picks the host; see docs/search_and_app.md.
"""

from __future__ import annotations

import os

from .backend import AppBackend


DEFAULT_LABELS = "cut onion, wash pan, open fridge, pour water"
QUEUE_SIZE = 32
"""Requests that may wait for the model; more are refused at once (gradio says the queue is full)."""
CACHE_SECONDS = 3600
"""gradio's uploads and outputs older than this are deleted, every this many seconds."""


def build_ui(backend: AppBackend, examples=()):
    import gradio as gr
    import pandas as pd

    from ..pipeline_eva02at import DEFAULT_TEMPLATE

    def classify(video, labels, template):
        try:
            scores = backend.classify(video, labels, template)
        except (ValueError, TypeError, OSError) as error:
            raise gr.Error(str(error)) from None
        table = pd.DataFrame({"label": [s["label"] for s in scores], "score": [round(s["score"], 4) for s in scores]})
        return table, table

    def search(query, top_k):
        try:
            results = backend.search(query, top_k)
        except (ValueError, OSError) as error:
            raise gr.Error(str(error)) from None
        gallery = [
            (preview, f"#{hit.rank}  {hit.score:.3f}  {os.path.basename(hit.path)}  {hit.start:.1f}-{hit.end:.1f} s")
            for hit, preview in results
        ]
        table = pd.DataFrame(
            [
                {
                    "rank": hit.rank,
                    "score": round(hit.score, 4),
                    "video": os.path.basename(hit.path),
                    "start (s)": round(hit.start, 2),
                    "end (s)": round(hit.end, 2),
                    "label": hit.caption or hit.label,
                }
                for hit, _ in results
            ]
        )
        return gallery, table

    with gr.Blocks(title="EVA02-AT", delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        gr.Markdown(
            "# EVA02-AT: egocentric video-language model\nZero-shot video classification and text-to-video "
            "search with one dual encoder."
        )
        with gr.Tab("Zero-shot classification", elem_id="tab-classify"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Video", sources=["upload"], elem_id="classify-video")
                    labels = gr.Textbox(
                        label="Labels, comma-separated", value=DEFAULT_LABELS, elem_id="classify-labels"
                    )
                    template = gr.Textbox(
                        label="Caption template ({} is the label)", value=DEFAULT_TEMPLATE, elem_id="classify-template"
                    )
                    run = gr.Button("Classify", variant="primary", elem_id="classify-run")
                    if examples:
                        gr.Examples(examples=[[path] for path in examples], inputs=[video], label="Example videos")
                with gr.Column():
                    chart = gr.BarPlot(
                        x="label", y="score", y_lim=[0, 1], sort="-y", label="Scores", elem_id="classify-chart"
                    )
                    scores = gr.Dataframe(
                        headers=["label", "score"], label="Scores", interactive=False, elem_id="classify-scores"
                    )
            # One model serves both tabs: one request at a time across the app (concurrency_id), the rest queue.
            run.click(classify, [video, labels, template], [chart, scores], concurrency_id="model")
        with gr.Tab("Search", elem_id="tab-search"):
            if backend.index is None:
                gr.Markdown("No index loaded: start the app with `--index`, made by `examples/index_videos.py`.")
            else:
                gr.Markdown(f"{len(backend.index)} clips indexed.")
            with gr.Row():
                query = gr.Textbox(label="What happens?", placeholder="cut an onion", elem_id="search-query", scale=4)
                top_k = gr.Slider(1, 12, value=4, step=1, label="Clips", elem_id="search-top-k", scale=1)
            go = gr.Button("Search", variant="primary", elem_id="search-run")
            gallery = gr.Gallery(label="Best clips", columns=4, elem_id="search-gallery")
            hits = gr.Dataframe(label="Hits", interactive=False, elem_id="search-hits")
            go.click(search, [query, top_k], [gallery, hits], concurrency_id="model")
            query.submit(search, [query, top_k], [gallery, hits], concurrency_id="model")
        limits = backend.limits
        gr.Markdown(
            f"One request runs at a time (one model on this machine); up to {QUEUE_SIZE} wait in the queue. Uploads "
            f"up to {limits['max_upload_bytes'] // 2**20} MB, {limits['max_seconds']} s and "
            f"{limits['max_frame_pixels'] / 1e6:.1f} megapixels per frame; {limits['max_labels']} labels."
        )
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def launch(
    backend: AppBackend, examples_folder: str | None = None, *, host: str | None = None, port: int | None = None
) -> None:
    """Build the UI over `backend` with the videos of `examples_folder` as examples, and serve it until interrupted."""
    demo = build_ui(backend, backend.example_videos(examples_folder))
    allowed = [os.path.abspath(examples_folder)] if examples_folder else []
    demo.launch(
        server_name=host, server_port=port, allowed_paths=allowed, max_file_size=backend.limits["max_upload_bytes"]
    )


__all__ = ["DEFAULT_LABELS", "build_ui", "launch"]
