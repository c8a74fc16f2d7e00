#!/usr/bin/env python3
"""Generate a realistic test corpus of a requested size.

Lines are multilingual UTF-8 text with log-normal lengths around 200 bytes,
about 1% empty lines and a few 10-100 KB lines (one per ~50 MB, at least one
in any corpus of 1 MB or more). `--format jsonl` wraps each line in a JSON
object as pre-training corpora usually are. The same seed and size give the
same bytes.

  python bench/make_corpus.py --size 1G --seed 1 corpus.txt
"""

import argparse
import json
import re
import sys

import numpy as np

VOCABULARY = {
    "en": "the of and to in is that for it with as was on be by this are from or have an they "
    "which one you were all we when there can more if out so said what up its about into than "
    "them only other new some could time these two may then do first any my now such like our "
    "over man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good very "
    "make world still own see men work long get here between both life being under never day",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch "
    "es an werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen "
    "so zum war haben nur oder aber vor zur bis mehr durch man sein wurde sei prozent hatte kann "
    "gegen vom können schon wenn habe seine mark ihre dann unter wir soll ich eines jahr zwei "
    "jahren diese dieser wieder keine uhr seiner worden und will zwischen immer millionen was "
    "sagte gibt alle seit muss doch jetzt drei neue damit bereits da auch ihr seinen müssen "
    "größer straße über schön",
    "fr": "le de un être et à il avoir ne je son que se qui ce dans en du elle au pour pas que "
    "vous par sur faire plus dire me on mon lui nous comme mais pouvoir avec tout y aller voir "
    "bien où sans tu ou leur homme si deux mari moi vouloir te femme venir quand grand celui "
    "notre devoir là jour prendre même votre rien petit encore aussi quelque dont tout mer trouver "
    "donner temps ça peu même falloir sous parler alors main chose ton mettre vie savoir yeux "
    "passer autre après regarder toujours puis jamais cela aimer non heure croire cent monde "
    "déjà été très français",
    "es": "el la de que y a en un ser se no haber por con su para como estar tener le lo todo "
    "pero más hacer o poder decir este ir otro ese la si me ya ver porque dar cuando él muy sin "
    "vez mucho saber qué sobre mi alguno mismo yo también hasta año dos querer entre así primero "
    "desde grande eso ni nos llegar pasar tiempo ella sí día uno bien poco deber entonces poner "
    "cosa tanto hombre parecer nuestro tan donde ahora parte después vida quedar siempre creer "
    "hablar llevar dejar nada cada seguir menos nuevo encontrar algo solo niño año señor",
    "ru": "и в не на я быть он с что а по это она этот к но они мы как из у который то за свой "
    "что весь год от так о для ты же все тот мочь вы человек такой его сказать только или ещё "
    "бы себя один как уже до время если сам когда другой вот говорить наш мой знать стать при "
    "чтобы дело жизнь кто первый очень два день её новый рука даже во со раз где там под можно "
    "ну какой после их работа без самый потом надо хотеть ли слово идти большой должен место",
    "el": "και το να η της ο σε με που για τα του την δεν από είναι ότι θα στο των ένα τον στην "
    "μου σου αλλά όταν πολύ όλα αυτό έχει μας ήταν στα μια οι τους μόνο μετά ακόμα εδώ εκεί "
    "τώρα καλά χρόνια ζωή κόσμος σπίτι δουλειά νερό ήλιος θάλασσα",
    "zh": "的 一 是 不 了 人 我 在 有 他 这 中 大 来 上 国 个 到 说 们 为 子 和 你 地 出 道 也 时 年 "
    "得 就 那 要 下 以 生 会 自 着 去 之 过 家 学 对 可 她 里 后 小 么 心 多 天 而 能 好 都 然 没 "
    "日 于 起 还 发 成 事 只 作 当 想 看 文 无 开 手 十 用 主 行 方 又 如 前 所 本 见 经 头 面",
    "ja": "の に は を た が で て と し れ さ ある いる も する から な こと として い や れる "
    "など なっ ない この ため その あっ よう また もの という あり まで られ なる へ か だ これ "
    "によって により おり より による ず なり られる において ば なかっ なく しかし について "
    "せ だっ その後 できる それ う ので なお のみ でき き つ における および いう さらに 日本 東京",
    "ar": "في من على أن إلى التي عن لا ما هذا الذي كان مع هذه قد بين كل لم أو بعد عام ذلك حتى "
    "إن وقد هو هي كما عند لها له فيه منذ أيضا خلال اليوم يوم غير بن عليه حيث بها ثم الى إذا "
    "عدد العالم الناس مصر كتاب",
    "hi": "के है में की और से को एक पर यह भी था कि हैं लिए ने नहीं तो कर किया ही इस होता साथ "
    "जो गया रहा वह जा कुछ हो अपने बाद दिया कहा उन्होंने अब सकते समय भारत लोग दिन काम",
    "emoji": "🙂 🚀 ✨ 🌍 📚 🎉 🔥 💡 🤖 ☕ 🐍 🌸",
}

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "": 1}


def parse_size(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]?)B?", text.strip().upper())
    if not match:
        raise argparse.ArgumentTypeError(f"size '{text}' is not like 500K, 200M or 4G")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def word_pool():
    """Every word as UTF-8 bytes, weighted toward English like web corpora."""
    words = []
    for language, text in VOCABULARY.items():
        repeat = 4 if language == "en" else 1
        words += [w.encode() for w in text.split()] * repeat
    return np.array(words, dtype=object)


def text_block(rng, words, nbytes):
    """About `nbytes` of space-separated random words."""
    count = max(1, nbytes // 6)
    return np.frombuffer(b" ".join(words[rng.integers(0, len(words), count)]), np.uint8)


def cut_lines(rng, block, giant_every):
    """Turn spaces of a word stream into line ends: log-normal lengths around 200
    bytes, ~1% empty lines, and now and then a 10-100 KB line."""
    spaces = np.flatnonzero(block == 32)
    wanted = np.cumsum(rng.lognormal(np.log(170), 0.7, len(block) // 60 + 1).astype(np.int64) + 1)
    cuts = np.unique(spaces[np.minimum(np.searchsorted(spaces, wanted), len(spaces) - 1)])
    for _ in range(rng.binomial(max(1, len(block) // giant_every), 0.5) if giant_every else 0):
        start = rng.integers(0, len(block))
        length = rng.integers(10_000, 100_000)
        cuts = cuts[(cuts < start) | (cuts >= start + length)]
    block = block.copy()
    block[cuts] = 10
    empties = cuts[rng.random(len(cuts)) < 0.01]
    return np.insert(block, empties + 1, 10)


def jsonl(lines, first_id):
    rows = []
    for offset, line in enumerate(lines):
        record = {"id": first_id + offset, "text": line.decode()}
        rows.append(json.dumps(record, ensure_ascii=False).encode())
    return b"\n".join(rows) + b"\n"


def generate(out, size, seed, fmt, giant_every=50 << 20):
    rng = np.random.default_rng(seed)
    words = word_pool()
    written, next_id, first = 0, 0, True
    while written < size:
        block = cut_lines(rng, text_block(rng, words, min(32 << 20, size - written + 4096)), giant_every)
        if first and size >= 1 << 20:
            block = np.concatenate([block, text_block(rng, words, 20_000), [10]]).astype(np.uint8)
        first = False
        data = block.tobytes()
        data = data[: data.rfind(b"\n") + 1]
        if fmt == "jsonl":
            lines = data.split(b"\n")[:-1]
            data = jsonl(lines, next_id)
            next_id += len(lines)
        data = data[: size - written]
        data = data[: data.rfind(b"\n") + 1] if written + len(data) >= size else data
        out.write(data)
        written += len(data)
        if not data:
            break
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="file to write ('-' for standard output)")
    parser.add_argument("--size", type=parse_size, required=True, help="e.g. 300K, 1G")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("text", "jsonl"), default="text")
    args = parser.parse_args(argv)
    with (open(args.output, "wb") if args.output != "-" else sys.stdout.buffer) as out:
        generate(out, args.size, args.seed, args.format)


if __name__ == "__main__":
    main()
