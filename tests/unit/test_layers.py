"""The packages form layers, no module imports another in a circle, and one module serves each boundary.

Layers, from the bottom: schemas/ and projections/ (the domain), streams/ (the worker), tools/ (the `loyalty`
command), bench/ (it drives the tools' broker, producer and log reader). A module imports its own layer and
those below it only. One edge goes up, by design: the command modules (tools/cli*.py) register `loyalty bench`
from bench/command.py, which imports the rest of bench/ only when the command runs. Imports inside functions
count like the others, and each says in a comment why it is not at the top of its module.

One module reads a Kafka topic to its end (streams/kafka_log.py: the consumers, the high-watermark read), for
the tools, the benchmark and the tests alike; one function parses a broker address (streams/settings.py).
"""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "projections", "streams", "tools", "bench")
# What each package must never import; its own package and those below it are allowed.
FORBIDDEN = {
    "schemas": {"streams", "tools", "bench"},
    "projections": {"streams", "tools", "bench"},
    "streams": {"tools", "bench"},
    "tools": {"bench"},
    "bench": set(),
}
# (importing modules, imported module): the `loyalty` command registers `loyalty bench` (see above).
ALLOWED_UPWARD = {("tools.cli", "bench.command")}


class Import(NamedTuple):
    """One module an import statement loads: a project module (dotted), or None for a library."""
    module: Optional[str]
    line: int
    in_function: bool
    explained: bool  # a comment on its line, the line above, or inside its group of imports says why


def module_name(path: Path, root: Path = ROOT) -> str:
    """Return the dotted module name of a source file ('tools/replay.py' -> 'tools.replay')."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_sources(root: Path = ROOT) -> dict[str, str]:
    """Return the source of every module of the layered packages, by dotted name."""
    return {module_name(p, root): p.read_text() for package in PACKAGES for p in sorted((root / package).rglob("*.py"))}


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Yield the blocks of statements directly inside a node (bodies, else, finally, except, match cases)."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block
    for handler in getattr(node, "handlers", ()):
        yield handler.body
    for case in getattr(node, "cases", ()):
        yield case.body


def imports_of(source: str, name: str, modules: set[str]) -> list[Import]:
    """List every import of a module's source, at the top or inside functions, resolved to project modules."""
    comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    package = name if name in PACKAGES else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(block: list[ast.stmt], in_function: bool) -> None:
        group: list[ast.stmt] = []  # consecutive import statements: one comment may explain them all
        for stmt in [*block, None]:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                group.append(stmt)
                continue
            explained = any(line in comments for line in range(group[0].lineno - 1, group[-1].end_lineno + 1)) \
                if group else False
            found.extend(Import(target, imp.lineno, in_function, explained)
                         for imp in group for target in _targets(imp, package, modules))
            group = []
            if stmt is not None:
                inner = in_function or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                for child in _statement_lists(stmt):
                    visit(child, inner)

    visit(ast.parse(source).body, False)
    return found


def _targets(stmt: ast.stmt, package: str, modules: set[str]) -> list[Optional[str]]:
    """Return the project modules one import statement loads (None for each library it imports)."""
    if isinstance(stmt, ast.Import):
        names = [alias.name for alias in stmt.names]
    else:
        base = stmt.module or ""
        if stmt.level:  # relative: from the module's package, one level up per extra dot
            anchor = package.split(".")[: len(package.split(".")) - stmt.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in stmt.names]
    return sorted({_resolve(n, modules) for n in names}, key=str)


def _resolve(name: str, modules: set[str]) -> Optional[str]:
    """Return the project module that importing `name` loads, or None for a library."""
    if name.split(".")[0] not in PACKAGES:
        return None
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def import_graph(sources: dict[str, str]) -> dict[str, list[Import]]:
    """Return module -> its imports, for every module given."""
    return {name: imports_of(source, name, set(sources)) for name, source in sources.items()}


def cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Return the import cycles: each set of modules that reach each other (Tarjan), or a module importing itself."""
    edges = {m: sorted({i.module for i in imports if i.module}) for m, imports in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:  # recursion is fine: the graph is a few hundred modules at most
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def upward_imports(graph: dict[str, list[Import]]) -> list[str]:
    """List the imports from a lower layer into a higher one, other than ALLOWED_UPWARD."""
    return [f"{module}:{imp.line} imports {imp.module}"
            for module, imports in graph.items() for imp in imports
            if imp.module and imp.module.split(".")[0] in FORBIDDEN[module.split(".")[0]]
            and not any(module.startswith(src) and imp.module == dst for src, dst in ALLOWED_UPWARD)]


def unexplained_imports_in_functions(graph: dict[str, list[Import]]) -> list[str]:
    """List the imports inside functions with no comment saying why they are not at the top."""
    return sorted({f"{module}:{imp.line}" for module, imports in graph.items() for imp in imports
                   if imp.in_function and not imp.explained})


def calls_to(sources: dict[str, str], names: set[str], literal: str = "", unless_on: str = "") -> set[str]:
    """Return the modules that call a function or method of one of these names.

    literal: only calls with an argument that holds it; unless_on: not methods of an object named so (a suffix).
    """
    found = set()
    for module, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            method = isinstance(node.func, ast.Attribute)
            name = node.func.attr if method else getattr(node.func, "id", None)
            if name not in names or (unless_on and method and ast.unparse(node.func.value).endswith(unless_on)):
                continue
            if not literal or any(isinstance(a, ast.Constant) and literal in str(a.value) for a in node.args):
                found.add(module)
    return found


# --- the project as it is -----------------------------------------------------------------------------------

GRAPH = import_graph(project_sources())


def test_every_package_and_imports_inside_functions_are_seen():
    assert {m.split(".")[0] for m in GRAPH} == set(PACKAGES)
    assert any(imp.in_function for imports in GRAPH.values() for imp in imports)


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(GRAPH) == []


def test_no_layer_imports_a_layer_above_it():
    assert upward_imports(GRAPH) == []


def test_every_import_inside_a_function_says_why():
    assert unexplained_imports_in_functions(GRAPH) == []


SOURCES = project_sources()
TEST_SOURCES = {module_name(p): p.read_text() for p in sorted((ROOT / "tests").rglob("*.py"))}


def test_one_module_reads_kafka_topics():
    # The benchmark's hand-written peer consumes as a group, as a worker does: it is measured, not a reader.
    # The reader's own test asks ListOffsets alone, to show that it falls short on the embedded broker; the
    # group-leave tests make plain group members, to show the broker's leader bug and the worker's way round it.
    assert calls_to({**SOURCES, **TEST_SOURCES}, {"KafkaConsumer", "AIOKafkaConsumer"}) == {
        "streams.kafka_log", "bench.peer_loop", "tests.integration.test_kafka_log",
        "tests.integration.test_group_leave", "tests.unit.test_faust_app"}
    # A worker's lag gauge asks its own (Faust's) consumer what it last fetched: that reads no topic.
    assert calls_to({**SOURCES, **TEST_SOURCES}, {"highwater", "end_offsets"}, unless_on="app.consumer") == {
        "streams.kafka_log", "tests.integration.test_kafka_log"}


def test_one_function_parses_a_broker_address():
    assert calls_to(SOURCES, {"split", "partition", "rpartition", "startswith", "removeprefix"}, "://") == {
        "streams.settings"}


# --- the checks can fail ------------------------------------------------------------------------------------

def test_a_cycle_through_imports_inside_functions_is_found():
    graph = import_graph({"tools.replay": "def run():\n    from tools.verify import live  # why\n",
                          "tools.verify": "def live():\n    if x:\n        from tools import replay  # why\n",
                          "tools.store": "import tools.replay\n", "tools": "", "streams.a": "from . import a\n"})
    assert cycles(graph) == [["streams.a"], ["tools.replay", "tools.verify"]]


@pytest.mark.parametrize("module, source, target", [
    ("streams.embedded", "def f():\n    from tools.broker import bootstrap_servers  # why\n", "tools.broker"),
    ("schemas.policy", "import streams.settings\n", "streams.settings"),
    ("projections.documents", "from tools import store\n", "tools.store"),
    ("projections.documents", "from ..tools import store\n", "tools.store"),
    ("streams.app", "from bench.run import run_bench\n", "bench.run"),
    ("tools.replay", "try:\n    pass\nexcept E:\n    import bench.limits\n", "bench.limits"),
    ("tools.cli", "from bench.run import run_bench\n", "bench.run"),
])
def test_an_upward_import_is_found(module, source, target):
    graph = import_graph({module: source, "tools.broker": "", "streams.settings": "", "tools.store": "",
                          "bench.run": "", "bench.limits": "", "tools": ""})
    assert [line.split(" ", 1)[1] for line in upward_imports(graph)] == [f"imports {target}"]


def test_the_command_may_register_the_bench_command():
    graph = import_graph({"tools.cli": "from bench.command import bench\n",
                          "tools.cli_query": "def f():\n    import bench.command  # why\n", "bench.command": ""})
    assert upward_imports(graph) == []


def test_a_second_reader_or_parser_is_found():
    sources = {"tools.a": "from kafka import KafkaConsumer\nc = KafkaConsumer(bootstrap_servers='h:1')\n",
               "tools.b": "async def f(c, tp):\n    return c.highwater(tp)\n",
               "tools.c": "host = address.rpartition('://')[2]\n", "tools.d": "x = a.split(',')\n",
               "streams.app": "lag = app.consumer.highwater(tp) - position\n"}
    assert calls_to(sources, {"KafkaConsumer", "AIOKafkaConsumer"}) == {"tools.a"}
    assert calls_to(sources, {"highwater", "end_offsets"}, unless_on="app.consumer") == {"tools.b"}
    assert calls_to(sources, {"highwater", "end_offsets"}) == {"tools.b", "streams.app"}
    assert calls_to(sources, {"split", "rpartition"}, "://") == {"tools.c"}


def test_an_import_inside_a_function_needs_a_comment():
    source = ("import os\n"
              "def a():\n    import faust\n\n"
              "def b():\n    import faust  # here so that the CLI starts fast\n\n"
              "def c():\n    # here so that the CLI starts fast\n    import faust\n    from kafka import errors\n\n"
              "def d():\n    if x:\n        import faust\n"
              "class E:\n    def f(self):\n        from tools import x\n")
    assert unexplained_imports_in_functions(import_graph({"m": source, "tools.x": ""})) == ["m:15", "m:18", "m:3"]
