# raftkv — top-level entry points. Everything real happens in CMake; this file only names the jobs.
#   make run    install dependencies, build, start a local 3-node cluster and open the client prompt
#               (no terminal: a scripted demo with a leader kill, then the cluster is stopped)
#   make stop   stop the cluster `make run` started
#   make chaos  long randomized fault campaigns against real processes (about 35 minutes)
#   make failover  kill the leader 20 times and report the failover time
#   make bench  raftkv-bench table and micro-benchmarks; make bench-vs-etcd: the etcd comparison
#   make test   install dependencies, build (Release, ASan+UBSan, TSan), run every test
#   make deb    the Debian package; make test-deb: installed by apt into a clean Debian 12 chroot
#   make test-ui  the dashboard in headless Chromium: kill the leader, see the new one (opt-in)
#   make fuzz   every libFuzzer target for FUZZ_SECONDS (default 300) each (clang; build-fuzz/)
#   make sim    a few hundred simulator seeds on 5 nodes
#   make soak   thousands of simulator seeds on 3, 5 and 7 nodes
#   make format apply .clang-format to every C++ file

JOBS ?= 2
CMAKE_FLAGS ?=
SIM := build/sim/raftkv-sim

.PHONY: deb test-deb test-ui fuzz build-fuzz test-fuzz bench bench-vs-etcd bench-growth chaos failover all deps build build-asan build-tsan test test-release test-asan test-tsan sim soak run stop format clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAFTKV_SANITIZE=address $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS)

test: test-release test-asan test-tsan test-fuzz
	@echo "make test: all tests passed"

test-release: build
	@cd build && ctest --output-on-failure -j $(JOBS)

# The core, simulator, state machine and checker under AddressSanitizer + UndefinedBehaviorSanitizer.
# The long seed sweeps run in the Release build above; here a shorter sweep on every size.
test-asan: export ASAN_OPTIONS = detect_leaks=1:abort_on_error=1
test-asan: export UBSAN_OPTIONS = print_stacktrace=1
test-asan: build-asan
	@cd build-asan && ctest --output-on-failure -j $(JOBS) -E 'SimulatorSeeds|InjectedBugs|Chaos'
	@build-asan/sim/raftkv-sim --seed 1 --seeds 40 --nodes 3 --quiet
	@build-asan/sim/raftkv-sim --seed 1 --seeds 20 --nodes 5 --quiet
	@build-asan/sim/raftkv-sim --seed 1 --seeds 10 --nodes 7 --quiet

# The threaded code under ThreadSanitizer (the core and simulator are single-threaded): the node's
# driver and dump.txt tests, the batching streams' outbox, and the client's session bookkeeping.
# Code paths through gRPC are left out: Debian's gRPC and Abseil are not TSan-instrumented, so
# TSan reports false races inside them.
build-tsan: deps
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAFTKV_SANITIZE=thread $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target node_test rpc_test client_test

test-tsan: export TSAN_OPTIONS = halt_on_error=1 second_deadlock_stack=1
test-tsan: build-tsan
	@build-tsan/tests/node_test --gtest_brief=1
	@build-tsan/tests/rpc_test --gtest_brief=1
	@build-tsan/tests/client_test --gtest_brief=1

# libFuzzer targets (fuzz/): the node's parsers and its peer and client request paths, built with
# clang, -fsanitize=fuzzer,address,undefined. make test runs each for a few seconds from its
# corpus (seeds and regression inputs); make fuzz for minutes.
FUZZ_SECONDS ?= 300
build-fuzz: deps
	@CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRAFTKV_SANITIZE=fuzz $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_all

fuzz: build-fuzz
	@scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

test-fuzz: export UBSAN_OPTIONS = print_stacktrace=1
test-fuzz: build-fuzz
	@scripts/fuzz.sh build-fuzz 5

# The dashboard in Debian's headless Chromium against a live 3-node cluster: kills the leader and
# checks the page shows the new one (tests/ui/dashboard_test.py; screenshots in build/ui/).
test-ui: build
	@./scripts/install-deps.sh ui
	@python3 tests/ui/dashboard_test.py

# The .deb (cpack) of the Release build: build/raftkv_<version>_amd64.deb. docs/operations.md.
deb: build
	@cd build && cpack -G DEB >/dev/null && ls -1 $(CURDIR)/build/raftkv_*.deb

# The .deb installed by apt into a clean Debian 12 chroot (debootstrap, cached in build/), and a
# 3-node cluster started from the installed unit's command line as the raftkv user.
test-deb: build
	@./scripts/install-deps.sh deb
	@tests/install/install_test.sh build chroot

sim: build
	@$(SIM) --seed 1 --seeds 300 --nodes 5 --quiet

soak: build
	@$(SIM) --seed 1 --seeds 3000 --nodes 3 --quiet
	@$(SIM) --seed 1 --seeds 2000 --nodes 5 --quiet
	@$(SIM) --seed 1 --seeds 1000 --nodes 7 --quiet

# Fault tests against real processes: random faults on 5 nodes, CHAOS_RUNS runs of CHAOS_RUN_TIME
# each (default 15 × 2 min, about 35 minutes with start-up and checking), drift within the bound.
CHAOS_RUNS ?= 15
CHAOS_RUN_TIME ?= 120s
chaos: build
	@build/tests/chaos/raftkv-chaos --nodes 5 --random $(CHAOS_RUN_TIME) --seeds $(CHAOS_RUNS) \
		--seed $${SEED:-1} --drift 0.009

# Benchmarks: the raftkv table and the micro-benchmarks; side by side with etcd (installs
# Debian's etcd-server if missing) into docs/benchmarks.md.
bench: build
	@./scripts/bench.sh

bench-vs-etcd: build
	@./scripts/bench-vs-etcd.sh

# Growth: 10 M SETs over 10,000 keys on raftkv and etcd (memory, disk, restart, catch-up, p99 in
# snapshot windows) into docs/benchmarks.md's Growth section; about 20 minutes.
bench-growth: build
	@./scripts/bench-growth.sh

# Failover time: kill -9 the leader 20 times with the shipped config.ini timings.
failover: build
	@build/tests/chaos/raftkv-chaos --nodes 3 --measure-failover 20

run: build
	@./scripts/run.sh

stop:
	@./scripts/raftkv-cluster down

format:
	@clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build build-asan build-tsan
