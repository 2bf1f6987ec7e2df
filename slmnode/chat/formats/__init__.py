"""Model formats: each model family's tool-call syntax and thinking tags, below the chat seam.

```
spec = detect(info.chat_template, info.architecture)               # which family (spec.py)
r = render(spec, info.chat_template, conv.messages, conv.tools,     # the prompt, tools rendered natively
           enable_thinking=..., bos_token=..., eos_token=...)       # (render.py)
g = call_gbnf(spec, conv.tools, schema_to_gbnf)                     # the lazy grammar (grammar.py):
patterns = lazy_trigger_patterns(spec, thinking_open=r.thinking_open)  # → llama_sampler_init_grammar_lazy_patterns
parser = OutputParser(spec, conv.tools, thinking_open=r.thinking_open)
for piece in engine_text: events = parser.feed(piece)               # ChatEvents (parser.py)
events = parser.finish()                                            # then the caller adds Finished
```
Pure Python: nothing here imports llama_cpp (the engine hands its JSON-schema→GBNF converter in).
"""

from slmnode.chat.formats.grammar import (
    CallGrammar,
    call_gbnf,
    call_schema_after_trigger,
    grammar_triggers,
    lazy_trigger_patterns,
)
from slmnode.chat.formats.parser import Collected, OutputParser, collect, new_parser, parse_text
from slmnode.chat.formats.render import Rendered, render, tool_prompt
from slmnode.chat.formats.spec import FormatSpec, detect

__all__ = [
    "CallGrammar",
    "Collected",
    "FormatSpec",
    "OutputParser",
    "Rendered",
    "call_gbnf",
    "call_schema_after_trigger",
    "collect",
    "detect",
    "grammar_triggers",
    "lazy_trigger_patterns",
    "new_parser",
    "parse_text",
    "render",
    "tool_prompt",
]
