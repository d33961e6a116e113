"""How ``buzon shell`` asks: numbered menus, questions, secrets, at a terminal or from a pipe.

Every answer is checked where it is read: an answer that does not fit says why and the
question comes again, so the actions behind the menus only ever see valid input. With the
answers piped in (no terminal), each one is echoed after its question, secrets excepted, so
the output reads like the session it was.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Sequence


class EndOfInput(Exception):
    """stdin ended (Ctrl-D, or the last piped answer was read): the shell says goodbye."""


class Prompter:
    """Questions on stdout, answers from stdin."""

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()

    def line(self, question: str) -> str:
        """One answer, without surrounding spaces.

        Raises:
            EndOfInput: stdin has no more lines.
        """
        try:
            answer = input(question)
        except EOFError:
            print()
            raise EndOfInput from None
        if not self.interactive:
            print(answer)
        return answer.strip()

    def secret(self, question: str) -> str:
        """A password or key: not echoed at a terminal, never echoed from a pipe."""
        try:
            if self.interactive:
                return getpass.getpass(question)
            answer = input(question)
        except EOFError:
            print()
            raise EndOfInput from None
        print()
        return answer

    def choose(self, title: str, options: Sequence[str], *, back: str) -> int | None:
        """Show a numbered menu; return the index of the option taken, None for ``back`` (0)."""
        print(f"\n{title}")
        for number, option in enumerate(options, 1):
            print(f"  {number}) {option}")
        print(f"  0) {back}")
        while True:
            answer = self.line("> ")
            if answer.isascii() and answer.isdigit() and int(answer) <= len(options):
                number = int(answer)
                return None if number == 0 else number - 1
            shown = f"{answer!r} is not on this menu" if answer else "nothing was typed"
            print(f"  {shown}: type a number from 0 to {len(options)} and press Enter")

    def text(self, question: str) -> str:
        """A non-empty answer (a name, a message)."""
        while True:
            answer = self.line(f"{question}: ")
            if answer:
                return answer
            print("  an answer is needed here (Ctrl-C goes back to the menu)")

    def count(self, question: str, *, default: int | None, most: int) -> int | None:
        """A whole number from 1 to ``most``; Enter gives ``default`` (None: no limit)."""
        hint = "no limit" if default is None else str(default)
        while True:
            answer = self.line(f"{question} [Enter: {hint}]: ")
            if not answer:
                return default
            if answer.isascii() and answer.isdigit() and 1 <= int(answer) <= most:
                return int(answer)
            print(f"  {answer!r} is not a whole number from 1 to {most}")

    def yes_no(self, question: str, *, default: bool) -> bool:
        """y or n; Enter gives ``default``."""
        while True:
            answer = self.line(f"{question} [{'Y/n' if default else 'y/N'}]: ").lower()
            if not answer:
                return default
            if answer in ("y", "yes", "n", "no"):
                return answer.startswith("y")
            print(f"  {answer!r}: answer y (yes) or n (no)")
