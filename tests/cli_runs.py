"""The examples' runs in this process: each function parses an argv list as its script in examples/ does and calls the
same package function (the scripts themselves run in subprocesses, in tests/test_cli.py)."""

from modeling_eva02at.app.cli import AppArguments, SpaceArguments, launch_app, push_space_from_arguments
from modeling_eva02at.conversion.cli import ConversionArguments, convert_from_arguments
from modeling_eva02at.evaluation.cli import (
    CharadesEgoArguments,
    EgoMcqArguments,
    Ek100MirArguments,
    EncodingArguments,
    evaluate_charades_ego_files,
    evaluate_egomcq_files,
    evaluate_ek100_mir_files,
)
from modeling_eva02at.hub.cli import PushArguments, push_from_arguments
from modeling_eva02at.search.cli import IndexArguments, QueryArguments, index_videos, query_index
from modeling_eva02at.utils.cli import parse_arguments


def eval_ek100_mir(argv):
    return evaluate_ek100_mir_files(*parse_arguments((Ek100MirArguments, EncodingArguments), argv))


def eval_egomcq(argv):
    return evaluate_egomcq_files(*parse_arguments((EgoMcqArguments, EncodingArguments), argv))


def eval_charades_ego(argv):
    return evaluate_charades_ego_files(*parse_arguments((CharadesEgoArguments, EncodingArguments), argv))


def convert_checkpoint(argv):
    return convert_from_arguments(*parse_arguments((ConversionArguments,), argv))


def push_to_hub(argv):
    return push_from_arguments(*parse_arguments((PushArguments,), argv))


def push_space(argv):
    return push_space_from_arguments(*parse_arguments((SpaceArguments,), argv))


def app(argv):
    return launch_app(*parse_arguments((AppArguments,), argv))


def index(argv):
    return index_videos(*parse_arguments((IndexArguments,), argv))


def search(argv):
    return query_index(*parse_arguments((QueryArguments,), argv))


def train_mir(argv, **kwargs):
    from modeling_eva02at.training.train_mir import parse_mir_arguments, train_mir

    return train_mir(*parse_mir_arguments(argv), **kwargs)
