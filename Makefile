# mxprobe: the two commands people need are `make demo` and `make check`.
# Both install missing Debian packages, build, and bring up the test world.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
DEB_BUILD  ?= build-deb
JOBS       ?= $(shell nproc)

.PHONY: all deps build check check-asan demo fuzz bench clean lab-up lab-down deb deb-check

all: build

deps:
	scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# The whole suite: C unit tests, busted specs, lab integration specs.
check: build
	scripts/run-tests $(BUILD)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMXPROBE_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	scripts/run-tests $(ASAN_BUILD)

# libFuzzer targets, each run for a bounded time.
fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DMXPROBE_FUZZ=ON -DMXPROBE_TESTS=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	fuzz/run $(FUZZ_BUILD) $${FUZZ_SECONDS:-30}

# The Debian packages (debian/), built with dpkg-buildpackage -us -uc -b in
# $(DEB_BUILD); deb-check also runs lintian and tries the packages.
deb:
	scripts/install-deps --deb
	JOBS=$(JOBS) scripts/build-deb $(DEB_BUILD)

deb-check:
	scripts/install-deps --deb
	tests/deb_smoke $(DEB_BUILD)

demo: build
	scripts/demo $(BUILD)

lab-up: deps
	tests/lab/up
lab-down:
	tests/lab/down

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(DEB_BUILD)
