"""A Gradio app for an EVA02-AT model: `examples/app.py` runs it locally, and a Hugging Face Space assembled by
`modeling_eva02at.hub.space` (examples/push_space.py) runs it from a copy of this package.

    pip install -e '.[demo]'
    python examples/app.py --model eva02at-b16 --index my_index/ --examples my_videos/ --port 7860

Two tabs:

* **Zero-shot classification**: upload a video (or pick an example), type comma-separated labels, and see the scores
  of the model's `zero-shot-video-classification` pipeline as a bar chart;
* **Search**: type what happens and see the best clips of an index made by `examples/search_videos.py`, each cut out
  of its video as a playable preview.

The defaults of --model, --index and --examples come from the environment (EVA02AT_MODEL, EVA02AT_INDEX,
EVA02AT_EXAMPLES: a Space's launcher sets them) and on a Space gradio picks the host; see docs/search_and_app.md.
"""

import argparse
import hashlib
import os
import tempfile

from ..evaluation.cli import add_dtype_argument

DEFAULT_LABELS = "cut onion, wash pan, open fridge, pour water"
GRADIO_MISSING = ("examples/app.py needs gradio, an optional extra of this package: pip install -e '.[demo]' "
                  "(or pip install gradio)")  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("EVA02AT_MODEL"),
                        help="model folder or Hub id (default: $EVA02AT_MODEL)")  # fmt: skip
    parser.add_argument("--processor", default=None, help="processor folder if not in --model")
    parser.add_argument("--index", default=os.environ.get("EVA02AT_INDEX"),
                        help="index folder made by search_videos.py, for the Search tab (default: $EVA02AT_INDEX)")
    parser.add_argument("--examples", default=os.environ.get("EVA02AT_EXAMPLES"),
                        help="folder of example videos for the first tab (default: $EVA02AT_EXAMPLES)")
    parser.add_argument("--host", default=None, help="default: gradio's (127.0.0.1, or 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=None, help="default: gradio's (7860, or the next free one)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    add_dtype_argument(parser, default=os.environ.get("EVA02AT_DTYPE", "auto"))
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model is required (or set EVA02AT_MODEL)")
    return args


class AppBackend:
    """What the app does, without the UI: zero-shot scores through the pipeline, and index search with previews.

    One model serves both tabs. Errors are ValueErrors with a message for the user (the UI shows them).
    """

    def __init__(self, model, processor, model_id, index=None, preview_dir: str | None = None):
        from transformers import pipeline

        from ..pipeline_eva02at import TASK

        self.model, self.processor, self.model_id, self.index = model, processor, model_id, index
        # load_model_and_processor registered the task with transformers' pipeline registry.
        self.classifier = pipeline(TASK, model=model, processor=processor, device=model.device)
        self.preview_dir = preview_dir or tempfile.mkdtemp(prefix="eva02at-previews-")

    @classmethod
    def load(cls, model_path: str, processor_path: str | None = None, index_path: str | None = None, device=None,
             dtype: str = "auto"):  # fmt: skip
        """The model in the dtype `dtype` resolves to (`resolve_dtype`: auto is bfloat16 on hardware that computes it
        natively), its processor, and the index checked against it."""
        from ..evaluation.cache import model_fingerprint
        from ..evaluation.encoding import load_model_and_processor, resolve_device, resolve_dtype
        from ..search.index import VideoIndex

        index = VideoIndex.load(index_path) if index_path else None
        device = resolve_device(device)
        torch_dtype, reason = resolve_dtype(dtype, device)
        print(f"The app computes in {reason}")
        model, processor = load_model_and_processor(model_path, processor_path=processor_path, device=device,
                                                    dtype=torch_dtype)  # fmt: skip
        model_id = model_fingerprint(model_path, processor_path)
        if index is not None:
            # Fail at start-up, not at the first query, when the index is another model's.
            index.check_model(model_id, what="the app's --model")
        return cls(model, processor, model_id, index)

    def classify(self, video, labels: str, template: str) -> list[dict]:
        """`[{"label", "score"}]` sorted by score, for the comma-separated `labels`."""
        if not video:
            raise ValueError("upload a video or pick an example first")
        candidate_labels = [label.strip() for label in (labels or "").split(",") if label.strip()]
        if not candidate_labels:
            raise ValueError("type at least one label; separate labels with commas, e.g. 'cut onion, wash pan'")
        return self.classifier(video, candidate_labels=candidate_labels, hypothesis_template=template or "{}")

    def search(self, query: str, top_k: int) -> list[tuple]:
        """`(hit, preview mp4 path)` of the `top_k` best clips of the index for `query`."""
        from ..search.index import search_index
        from ..search.preview import write_preview

        if self.index is None:
            raise ValueError("no index loaded: start the app with --index (made by examples/search_videos.py)")
        if not (query or "").strip():
            raise ValueError("type what you are looking for, e.g. 'cut an onion'")
        hits = search_index(self.index, self.model, self.processor, [query], model_id=self.model_id,
                            top_k=int(top_k))[0]
        results = []
        for hit in hits:
            key = hashlib.sha1(f"{hit.path}|{hit.start}|{hit.end}".encode()).hexdigest()[:16]
            preview = os.path.join(self.preview_dir, f"clip-{key}.mp4")
            if not os.path.isfile(preview):
                write_preview(self.processor.image_processor, hit.path, hit.start, hit.end, preview)
            results.append((hit, preview))
        return results


def example_videos(folder: str | None) -> list[str]:
    if not folder:
        return []
    from ..search.index import VideoFolder

    return VideoFolder(folder).video_paths()[:12]


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
        gallery = [(preview, f"#{hit.rank}  {hit.score:.3f}  {os.path.basename(hit.path)}  "
                             f"{hit.start:.1f}-{hit.end:.1f} s") for hit, preview in results]  # fmt: skip
        table = pd.DataFrame([{"rank": hit.rank, "score": round(hit.score, 4), "video": os.path.basename(hit.path),
                               "start (s)": round(hit.start, 2), "end (s)": round(hit.end, 2),
                               "label": hit.caption or hit.label} for hit, _ in results])  # fmt: skip
        return gallery, table

    with gr.Blocks(title="EVA02-AT") as demo:
        gr.Markdown("# EVA02-AT: egocentric video-language model\nZero-shot video classification and text-to-video "
                    "search with one dual encoder.")  # fmt: skip
        with gr.Tab("Zero-shot classification", elem_id="tab-classify"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Video", sources=["upload"], elem_id="classify-video")
                    labels = gr.Textbox(label="Labels, comma-separated", value=DEFAULT_LABELS,
                                        elem_id="classify-labels")  # fmt: skip
                    template = gr.Textbox(label="Caption template ({} is the label)", value=DEFAULT_TEMPLATE,
                                          elem_id="classify-template")  # fmt: skip
                    run = gr.Button("Classify", variant="primary", elem_id="classify-run")
                    if examples:
                        gr.Examples(examples=[[path] for path in examples], inputs=[video], label="Example videos")
                with gr.Column():
                    chart = gr.BarPlot(x="label", y="score", y_lim=[0, 1], sort="-y", label="Scores",
                                       elem_id="classify-chart")  # fmt: skip
                    scores = gr.Dataframe(headers=["label", "score"], label="Scores", interactive=False,
                                          elem_id="classify-scores")  # fmt: skip
            run.click(classify, [video, labels, template], [chart, scores])
        with gr.Tab("Search", elem_id="tab-search"):
            if backend.index is None:
                gr.Markdown("No index loaded: start the app with `--index`, made by `examples/search_videos.py`.")
            else:
                gr.Markdown(f"{len(backend.index)} clips indexed.")
            with gr.Row():
                query = gr.Textbox(label="What happens?", placeholder="cut an onion", elem_id="search-query", scale=4)
                top_k = gr.Slider(1, 12, value=4, step=1, label="Clips", elem_id="search-top-k", scale=1)
            go = gr.Button("Search", variant="primary", elem_id="search-run")
            gallery = gr.Gallery(label="Best clips", columns=4, elem_id="search-gallery")
            hits = gr.Dataframe(label="Hits", interactive=False, elem_id="search-hits")
            go.click(search, [query, top_k], [gallery, hits])
            query.submit(search, [query, top_k], [gallery, hits])
    return demo


def main(argv=None):
    args = parse_args(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit(GRADIO_MISSING) from None
    backend = AppBackend.load(args.model, args.processor, args.index, device=args.device, dtype=args.dtype)
    examples = example_videos(args.examples)
    demo = build_ui(backend, examples)
    allowed = [os.path.abspath(args.examples)] if args.examples else []
    demo.launch(server_name=args.host, server_port=args.port, allowed_paths=allowed)

