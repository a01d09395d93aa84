# cached — build, test, run. `make help` lists the targets.
# Sources are found by wildcard: a new .c file in a module folder is built without editing this.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= gcc
PYTHON  ?= /usr/bin/python3

PKGS      := libevent libevent_pthreads jemalloc libsystemd libssl libcrypto libsasl2
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
HARDEN   := -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
OPT      ?= -O2 -g
CFLAGS   ?=
CFLAGS   += -std=gnu11 $(OPT) $(WARN) $(HARDEN) -I. $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += -pie -Wl,-z,relro,-z,now
LDLIBS   += $(PKG_LIBS) -lpthread -lm

LIB_SRCS  := $(sort $(wildcard storage/*.c protocol/*.c config/*.c server/*.c))
LIB_SRCS  := $(filter-out server/main.c,$(LIB_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/server/main.o
UNIT_SRCS := $(sort $(wildcard tests/unit/check_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRCS := $(sort $(wildcard tools/bench/*.c))

.PHONY: all deps run test test-unit test-integration asan test-asan bench fuzz install clean \
        format lint help deb

all: $(BUILD)/cached cached

deps:
	@bash tools/deps.sh

# The binary lives in the build folder; ./cached is a copy for convenience (release build only).
cached: $(BUILD)/cached
	@if [ "$(BUILD)" = build ]; then cp -f $< $@; fi

$(BUILD)/cached: $(MAIN_OBJ) $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/check_%: tests/unit/check_%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/cached-bench: $(BENCH_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The do-nothing server the bench measures as the ceiling (tools/bench/ceiling/ceiling.c).
$(BUILD)/cached-ceiling: tools/bench/ceiling/ceiling.c tools/bench/data.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread

# In-process pipelined-get timing of the protocol and storage (tools/bench/micro/proto_pipe.c).
$(BUILD)/proto-pipe: tools/bench/micro/proto_pipe.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# TLS load generator for BENCHMARKS.md (cached -Z against memcached -Z, alternating).
$(BUILD)/cached-tlsbench: tools/tlsbench/tlsbench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# tools/hitsim: the hit-ratio traces replayed in process against storage/ (tools/hitsim/README).
$(BUILD)/hitsim: tools/hitsim/replay.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# As root, cached (like memcached) will not run without a user to drop to: use nobody.
run: deps all
	@if [ "$$(id -u)" -eq 0 ]; then exec ./cached -u nobody $(ARGS); else exec ./cached $(ARGS); fi

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -DCACHED_DEBUG -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" LDFLAGS="-fsanitize=address,undefined" build-asan/cached
	@bash tests/run.sh all

test-unit: deps all
	@bash tests/run.sh unit

test-integration: deps all
	@bash tests/run.sh integration

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -DCACHED_DEBUG -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" LDFLAGS="-fsanitize=address,undefined" build-asan/cached

unit-bins: $(UNIT_BINS)

bench: deps all $(BUILD)/cached-bench $(BUILD)/cached-ceiling
	@bash tools/bench.sh
	@/usr/bin/python3 tools/bench_hitratio.py

fuzz: deps
	@bash tests/fuzz/run.sh $${FUZZ_SECONDS:-300}

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/doc/cached $(DESTDIR)/etc/cached \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BUILD)/cached $(DESTDIR)$(PREFIX)/bin/cached
	install -m 0644 tools/cached.1 $(DESTDIR)$(PREFIX)/share/man/man1/cached.1
	install -m 0644 cached.conf.example $(DESTDIR)$(PREFIX)/share/doc/cached/cached.conf.example
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/cached/README.md
	sed 's|/usr/local/bin/cached|$(PREFIX)/bin/cached|' tools/cached.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/cached.service

# A Debian package (debian/), built from a copy under /tmp; the .deb lands in $(BUILD)/deb/.
deb: deps
	@bash tools/build_deb.sh $(BUILD)/deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

lint:
	@bash tools/lint.sh

clean:
	rm -rf build build-asan build-fuzz cached

help:
	@echo "make run | test | test-unit | test-integration | asan | bench | fuzz | lint | install | deb | format | clean"

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BINS:=.d)
