"""A child process for the fault tests: a bot on a scripted model writing sessions as fast as it can.

    python session_writer.py STORE.sqlite3 BOT.yaml [crash-after-handoff-insert]

After each turn returns it prints ``committed <session> <messages>``, so the parent knows what was
committed before it kills the process. With ``crash-after-handoff-insert`` the process dies (os._exit,
like a kill) right after the hand-off row is written and before the session's state changes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes import ScriptedEngine
from glmkit.apps.bot_config import BotConfig
from glmkit.apps.service import Bot
from glmkit.apps.sessions import SessionStore
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from kb_fakes import HashEmbedder


def main() -> None:
    store = SessionStore(Path(sys.argv[1]))
    crash = len(sys.argv) > 3 and sys.argv[3] == "crash-after-handoff-insert"
    if crash:
        real = store.q

        def q(sql: str, args: tuple[object, ...] = ()) -> list[object]:
            out = real(sql, args)
            if sql.startswith("INSERT OR REPLACE INTO handoffs"):
                os._exit(9)
            return out

        store.q = q  # type: ignore[method-assign]
    model = EngineChatModel(ScriptedEngine(["\n好的，请稍等。"], n_ctx=4096), ChatGLM3Format(), name="fake")
    bot = Bot(BotConfig.load(Path(sys.argv[2])), model, HashEmbedder(), store)
    n = 0
    while True:
        sid = bot.start("load")
        for text in ("你好", "我的快递到哪了", "转人工"):
            bot.turn(sid, text)
        n += 1
        print(f"committed {sid} {len(store.messages(sid))}", flush=True)


if __name__ == "__main__":
    main()
