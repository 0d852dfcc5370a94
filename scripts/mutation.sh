#!/usr/bin/env bash
# Mutation testing with mutmut over what the tests claim to guard: estimators/, decoders/,
# the pose filters, the worker's failover policy and supervisor, outputs/. Slow (hours
# for everything on a small machine), so not in CI: run it after changing those, and
# kill each surviving mutant with a test or write down why it is equivalent
# (docs/mutation.md).
#
#   scripts/mutation.sh                      # every listed module
#   scripts/mutation.sh 'edgepose.app.filters*'   # mutmut mutant-name globs
#
# It works on a copy of the tracked files in build/mutation/ (mutmut writes mutants/
# there, and its config, made here, stays out of the repo); the survivors are listed at
# the end and left in build/mutation/survivors.txt (`mutmut show NAME` there for a diff).
# MUTMUT (default .venv/bin/mutmut), EDGEPOSE_SHARED (default ../shared), MUTATION_PATHS
# (the files mutated), MUTATION_TESTS (the test paths run against each mutant) and
# MUTATION_MARKERS (pytest -m, default: not slow and not edgetpu and not picamera) can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
mutmut="${MUTMUT:-$repo/.venv/bin/mutmut}"
export EDGEPOSE_SHARED="${EDGEPOSE_SHARED:-$(cd "$repo/.." && pwd)/shared}"
work="${MUTATION_WORK:-$repo/build/mutation}"  # a second run at once needs its own folder
tests="${MUTATION_TESTS:-tests/edgepose/estimators tests/edgepose/decoders tests/edgepose/app/test_filters.py
tests/edgepose/inference/worker/test_policy.py tests/edgepose/inference/worker/test_parts.py
tests/edgepose/inference/worker/test_supervisor.py tests/edgepose/outputs/test_jsonl.py
tests/edgepose/outputs/test_recording.py tests/edgepose/outputs/test_websocket.py tests/edgepose/outputs/test_osc.py}"

# MUTATION_PATHS narrows what is mutated (generating mutants for everything takes minutes)
paths="${MUTATION_PATHS:-edgepose/estimators/* edgepose/decoders/* edgepose/app/filters.py
edgepose/inference/worker/policy.py edgepose/inference/worker/supervisor.py edgepose/outputs/*}"
set -f  # the globs above are mutmut's, not the shell's

[ -x "$mutmut" ] || { echo "mutmut is not installed: .venv/bin/pip install -e '.[mutation]'" >&2; exit 2; }
rm -rf "$work"
mkdir -p "$work"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
{
  echo "[mutmut]"
  echo "source_paths = edgepose"
  echo "only_mutate ="
  for p in $paths; do echo "    $p"; done
  echo "do_not_mutate ="
  echo "    edgepose/outputs/serve/static/*"
  echo "pytest_add_cli_args_test_selection ="
  for t in $tests; do echo "    $t"; done
  echo "pytest_add_cli_args ="
  echo "    -p"
  echo "    no:cacheprovider"
  echo "    -m"
  echo "    ${MUTATION_MARKERS:-not slow and not edgetpu and not picamera}"
  echo "use_setproctitle = false"  # its titles hid the worker processes test_supervisor.py finds by name
  echo "also_copy ="
  for p in tests models deploy pyproject.toml; do echo "    $p"; done
} > "$work/setup.cfg"
cd "$work"
nice -n 10 "$mutmut" run "$@" || true
"$mutmut" results | grep -v ": not checked" > survivors.txt || true
echo "survivors ($(grep -c . survivors.txt || true)); see $work/survivors.txt and \`mutmut show NAME\` there:"
cat survivors.txt
