"""Speech recognition: embedded digit corpus (espeak-ng), LibriSpeech, log-mel features,
torchaudio's Emformer RNN-T, greedy/beam/streaming decoding, WER, the shared dense model.

Typical use in a chapter::

    from lib.asr import dense_asr, load_data, DENSE_RECIPES, evaluate_wer
    model, tokenizer, artifact = dense_asr("tutorial", seed=0)   # cached after first build
    sets, _ = load_data(DENSE_RECIPES["tutorial"], seed=0, tokenizer=tokenizer)
    evaluate_wer(model, sets["test"], tokenizer)                  # greedy, unseen voices
"""

from .corpus import DIGIT_WORDS, DigitCorpusConfig, add_noise, digit_corpus, make_noise
from .data import BucketBatches, StepBatchLoader, UtteranceSet, corpus_sets
from .decode import (
    DECODING_METHODS,
    beam_decode,
    greedy_decode,
    real_time_factor,
    stream_beam_decode,
    stream_greedy_decode,
    transcribe,
)
from .features import GlobalCMVN, LogMel, SpecAugment, log_mel
from .model import (
    ASRModel,
    Batch,
    RNNTModelConfig,
    base_rnnt_config,
    build_rnnt,
    collate,
    count_parameters,
    small_rnnt_config,
)
from .recipes import (
    ARTIFACT_NAME,
    dense_asr,
    dense_asr_artifact,
    dense_asr_cached,
    dense_asr_key,
    dense_recipe,
    eval_splits,
    load_data,
    model_from_artifact,
    train_dense,
)
from .scales import DENSE_RECIPES, DenseASRRecipe
from .text import CharTokenizer, SentencePieceTokenizer, WordTokenizer, tokenizer_from_state
from .training import TrainConfig, evaluate_wer, make_optimizer, make_specaugment, train_asr
from .wer import (
    edit_distance,
    paired_bootstrap,
    utterance_word_errors,
    word_error_rate,
    word_errors,
)

__all__ = [
    "ARTIFACT_NAME", "ASRModel", "Batch", "BucketBatches", "CharTokenizer", "DECODING_METHODS",
    "DENSE_RECIPES", "DIGIT_WORDS", "DenseASRRecipe", "DigitCorpusConfig", "GlobalCMVN",
    "LogMel", "RNNTModelConfig", "SentencePieceTokenizer", "SpecAugment", "StepBatchLoader",
    "TrainConfig", "UtteranceSet", "WordTokenizer", "add_noise", "base_rnnt_config", "beam_decode",
    "build_rnnt", "collate", "corpus_sets", "count_parameters", "dense_asr",
    "dense_asr_artifact", "dense_asr_cached", "dense_asr_key", "dense_recipe", "digit_corpus",
    "edit_distance", "eval_splits",
    "evaluate_wer", "greedy_decode", "load_data", "log_mel", "make_noise", "make_optimizer",
    "make_specaugment", "model_from_artifact", "paired_bootstrap", "real_time_factor",
    "small_rnnt_config", "stream_beam_decode", "stream_greedy_decode", "tokenizer_from_state",
    "train_asr", "train_dense", "transcribe", "utterance_word_errors", "word_error_rate",
    "word_errors",
]
