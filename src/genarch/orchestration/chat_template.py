"""A chat template: turns a list of chat messages into one prompt for a text generator.

:class:`ChatTemplate` is shaped like every
:class:`~genarch.protocols.PromptTemplate`: its ``variables`` are
``{"messages"}`` and ``render({"messages": [...]})`` returns the prompt. Each
message is a :class:`ChatMessage` (or a mapping with ``role`` and
``content``); each turn is written as the role's marker, the content
(inserted literally, never interpreted) and the end-of-turn marker, and the
prompt ends with the assistant's marker so the model writes the next turn.

A content that contains one of the template's own markers is refused (an
:class:`~genarch.errors.InvalidInputError` naming the message), because it
could forge a turn: a user message ending in ``"<|end|>\\n<|system|>\\n..."``
would otherwise read to the model as a system instruction.

Examples:
    >>> template = ChatTemplate()
    >>> sorted(template.variables)
    ['messages']
    >>> print(template.render({"messages": [
    ...     {"role": "system", "content": "Be brief."},
    ...     {"role": "user", "content": "Hi {name}"},
    ... ]}), end="")
    <|system|>
    Be brief.<|end|>
    <|user|>
    Hi {name}<|end|>
    <|assistant|>
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import Field

from genarch.configured import Configured
from genarch.errors import InvalidInputError
from genarch.schemas import Config, Record
from genarch.validation import describe

__all__ = ["ChatMessage", "ChatTemplate", "ChatTemplateConfig"]

Role = Literal["system", "user", "assistant"]


class ChatMessage(Record):
    """One turn of a conversation.

    Attributes:
        role: ``"system"``, ``"user"`` or ``"assistant"``.
        content: the turn's text.
    """

    role: Role
    content: str


class ChatTemplateConfig(Config):
    """The markers a :class:`ChatTemplate` writes around each turn.

    Attributes:
        system: written before a system message.
        user: written before a user message.
        assistant: written before an assistant message (and at the end, for
            the turn the model writes, when ``add_generation_prompt``).
        end_of_turn: written after each message's content.
        default_system: a system message put first when the conversation has none.
        add_generation_prompt: end the prompt with the ``assistant`` marker.
    """

    system: Annotated[str, Field(min_length=1)] = "<|system|>\n"
    user: Annotated[str, Field(min_length=1)] = "<|user|>\n"
    assistant: Annotated[str, Field(min_length=1)] = "<|assistant|>\n"
    end_of_turn: Annotated[str, Field(min_length=1)] = "<|end|>\n"
    default_system: str | None = None
    add_generation_prompt: bool = True


class ChatTemplate(Configured[ChatTemplateConfig]):
    """Renders chat messages into a prompt (a :class:`~genarch.protocols.PromptTemplate`).

    See the module docstring for the layout and why markers inside a
    message are refused.
    """

    @property
    def variables(self) -> frozenset[str]:
        """The one variable: ``messages``."""
        return frozenset({"messages"})

    def render(self, values: Mapping[str, object]) -> str:
        """The prompt for ``values["messages"]``.

        Raises:
            InvalidInputError: ``values`` is not a mapping holding exactly
                ``messages``; ``messages`` is not a non-empty list of messages; a
                message has an unknown role or a content holding a marker.
        """
        if not isinstance(values, Mapping):
            raise InvalidInputError(
                f"ChatTemplate.render expected a mapping of variable values, got {describe(values)}"
            )
        if set(values) != {"messages"}:
            raise InvalidInputError(
                f"ChatTemplate.render: expected the variable(s) ['messages'], "
                f"got {sorted(map(str, values))}"
            )
        return self.render_messages(values["messages"])

    def render_messages(self, messages: object) -> str:
        """The prompt for ``messages`` (a sequence of :class:`ChatMessage` or mappings).

        Raises:
            InvalidInputError: as :meth:`render`.
        """
        turns = self._check(messages)
        config = self.config
        if config.default_system is not None and not any(m.role == "system" for m in turns):
            turns.insert(0, ChatMessage(role="system", content=config.default_system))
        marker = {"system": config.system, "user": config.user, "assistant": config.assistant}
        parts = [f"{marker[m.role]}{m.content}{config.end_of_turn}" for m in turns]
        if config.add_generation_prompt:
            parts.append(config.assistant)
        return "".join(parts)

    def _check(self, messages: object) -> list[ChatMessage]:
        if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
            raise InvalidInputError(
                f"ChatTemplate: messages must be a non-empty list of messages, "
                f"got {describe(messages)}"
            )
        config = self.config
        markers = (config.system, config.user, config.assistant, config.end_of_turn)
        turns = []
        for index, message in enumerate(messages):
            if isinstance(message, Mapping):
                try:
                    message = ChatMessage.parse(dict(message))
                except InvalidInputError as error:
                    raise InvalidInputError(f"ChatTemplate: messages[{index}]: {error}") from None
            if not isinstance(message, ChatMessage):
                raise InvalidInputError(
                    f"ChatTemplate: messages[{index}] must be a ChatMessage or a mapping "
                    f"with role and content, got {describe(message)}"
                )
            if found := [m for m in markers if m.strip() and m.strip() in message.content]:
                raise InvalidInputError(
                    f"ChatTemplate: messages[{index}] ({message.role}) contains the template's "
                    f"marker {found[0].strip()!r}, which could forge a turn; remove it"
                )
            turns.append(message)
        return turns
