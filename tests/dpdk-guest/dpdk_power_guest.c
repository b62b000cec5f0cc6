/* SPDX-License-Identifier: Apache-2.0
 *
 * dpdk_power_guest: a guest program linked with DPDK's own librte_power
 * (Debian's DPDK 22.11), used in its kvm_vm environment exactly as a DPDK
 * application uses it, to check a host against DPDK's reply contract.
 *
 * It reads steps from stdin, one per line, runs each as soon as it is read,
 * and prints one machine-readable line per step on stdout (flushed), so a
 * test can check the host's effects between steps:
 *
 *   init L                      rte_power_init(L): opens the port of lcore L
 *                               and sends CPU_POWER_CONNECT (no reply due)
 *   power L UNIT EXPECT         rte_power_freq_up/down/min/max,
 *                               rte_power_freq_enable/disable_turbo
 *                               (UNIT up|down|min|max|enable_turbo|disable_turbo)
 *   unit L N EXPECT             CPU_POWER with the raw unit N (e.g. 0 or 7)
 *   policy L KIND EXPECT VCPUS [workload=high|medium|low] [busy=H,..]
 *          [quiet=H,..] [traffic=H,..] [mac=XX:..] [avg=PPS] [max=PPS]
 *                               PKT_POLICY (KIND traffic|time|workload|
 *                               branch_ratio, VCPUS e.g. 0,1)
 *   query L KIND EXPECT         QUERY_FREQ|QUERY_FREQ_LIST|QUERY_CAPS|
 *                               QUERY_CAPS_LIST (KIND freq|freq_list|caps|
 *                               caps_list); the single forms ask for vCPU L
 *   remove L EXPECT             PKT_POLICY_REMOVE
 *
 * EXPECT: ack, nack, verdict (ACK or NACK), reply (the query's answer) or
 * none. At end of input every open port is drained for -d ms: any byte
 * left is a failure. Then rte_power_exit on each lcore.
 *
 * Each reply is read the way DPDK's guest_cli reads it: one
 * rte_power_guest_channel_receive_msg() of the reply's size right after
 * the send (it polls 10 ms, then reads the full size, failing on a partial
 * read), then a check of the command code. ACK/NACK must echo the request
 * (DPDK's host sends the request back with only `command` changed), so a
 * stale reply to an earlier request is told apart from the right one.
 *
 * A step fails on: a missing reply where one is due; a reply later than
 * DPDK's 10 ms window (then it waits -l ms more to say how late, or that
 * none came); a wrong command code or an echo of another request (stale);
 * a reply where none is due (the port is polled for -q ms after such a
 * step, and after every reply for extra bytes). After a failure the port
 * is drained so the next steps are judged on their own. With -L a whole
 * reply that comes after DPDK's window (within -l ms) is judged as this
 * step's reply and counted as late instead of failing: on a shared, loaded
 * machine the guest's own scheduling makes some replies late, and timing is
 * the reply-time benchmark's job (vmpower-bench dpdk-reply); staleness,
 * echoes, sizes and silence stay failures.
 *
 * Output: one line per step,
 *   step=N op=OP lcore=L sent=WHAT expect=E got=WHAT cmd=C size=S us=T result=ok|FAIL [why="..."]
 * where us is the time from the send to the end of the read (for a late
 * reply, to its first byte), then
 *   summary steps=N failures=F replies=R late=L p50_us=T max_us=T
 * (the median and the largest send-to-reply time of every reply read).
 * Exit status: 0 every step as expected, 1 some step failed, 2 usage or
 * set-up error (the line says which).
 *
 * Build (Debian: apt-get install libdpdk-dev pkg-config gcc):
 *   cc -O2 -Wall -Wextra -Werror -DALLOW_EXPERIMENTAL_API -o dpdk_power_guest \
 *      dpdk_power_guest.c $(pkg-config --cflags --libs libdpdk)
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_power.h>
#include <rte_power_guest_channel.h>
#include <rte_version.h>

#define PORT_PATH "/dev/virtio-ports/virtio.serial.port.poweragent"
#define MAX_LCORES 8
/* DPDK's guest_channel.c: receive_msg polls this long. */
#define DPDK_WINDOW_MS 10

enum expect { EXP_NONE, EXP_ACK, EXP_NACK, EXP_VERDICT, EXP_REPLY };

static const char *const expect_names[] = { "none", "ack", "nack", "verdict", "reply" };

static char vm_name[RTE_POWER_VM_MAX_NAME_SZ] = "ubuntu2"; /* guest_cli's */
static int quiet_ms = 50;   /* poll after a step that gets no reply */
static int late_ms = 1000;  /* how long to wait for a late reply */
static bool late_is_figure; /* -L: a late whole reply is counted, not failed */
static unsigned int late;   /* replies later than DPDK's window (-L) */
static int drain_ms = 500;  /* final check for leftover bytes */

/* DPDK's fd for each lcore's port (the library keeps it to itself). */
static int port_fd[MAX_LCORES] = { -1, -1, -1, -1, -1, -1, -1, -1 };
static unsigned int step_no;
static unsigned int failures;
/* Send-to-reply times of every reply read, for the summary. */
static long long reply_us[4096];
static size_t replies;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The fd librte_power opened for PORT_PATH.L: the one open on that device. */
static int find_port_fd(unsigned int lcore)
{
	char path[256];
	struct stat port, st;
	DIR *d;
	struct dirent *e;
	int found = -1;

	snprintf(path, sizeof(path), "%s.%u", PORT_PATH, lcore);
	if (stat(path, &port) != 0)
		return -1;
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == port.st_rdev &&
		    fd > found)
			found = fd;
	}
	closedir(d);
	return found;
}

/* Waits up to ms for the port to become readable; -1 on error. */
static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do {
		r = poll(&p, 1, ms);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Reads whatever arrives on the port until it has been quiet for ms. */
static size_t drain(int fd, int ms, unsigned char *first, size_t first_len)
{
	unsigned char buf[4096];
	size_t total = 0;

	while (wait_readable(fd, ms) > 0) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		if (total < first_len) {
			size_t k = (size_t)n < first_len - total ? (size_t)n : first_len - total;

			memcpy(first + total, buf, k);
		}
		total += (size_t)n;
	}
	return total;
}

static uint32_t command_of(const unsigned char *rec, size_t len)
{
	uint32_t c = 0;

	if (len >= 16)
		memcpy(&c, rec + 12, sizeof(c));
	return c;
}

static const char *field_at(size_t off)
{
	if (off < 8) return "resource_id";
	if (off < 12) return "unit";
	if (off < 16) return "command";
	if (off < 48) return "vm_name";
	if (off < 128) return "vfid";
	if (off < 144) return "nb_mac_to_monitor/traffic_policy";
	if (off < 156) return "vcpu_to_control/num_vcpu";
	if (off < 444) return "timer_policy";
	if (off < 448) return "core_type";
	if (off < 452) return "workload";
	if (off < 456) return "policy_to_use";
	return "t_boost_status";
}

struct outcome {
	bool fail;
	char why[200];
	char got[48];
	char extra[160];
	uint32_t cmd;
	size_t size;
	long long us;
};

static void __attribute__((format(printf, 2, 3))) fail(struct outcome *o, const char *fmt, ...)
{
	va_list ap;

	if (o->fail)
		return; /* the first reason is the one that matters */
	o->fail = true;
	va_start(ap, fmt);
	vsnprintf(o->why, sizeof(o->why), fmt, ap);
	va_end(ap);
}

static void report(const char *op, unsigned int lcore, const char *sent, enum expect e,
		   struct outcome *o)
{
	printf("step=%u op=%s lcore=%u sent=%s expect=%s got=%s cmd=%" PRIu32 " size=%zu us=%lld%s%s result=%s",
	       step_no, op, lcore, sent, expect_names[e], o->got[0] ? o->got : "nothing", o->cmd,
	       o->size, o->us, o->extra[0] ? " " : "", o->extra, o->fail ? "FAIL" : "ok");
	if (o->fail) {
		printf(" why=\"%s\"", o->why);
		failures++;
	}
	if (o->got[0] && o->us > 0 && replies < sizeof(reply_us) / sizeof(reply_us[0]))
		reply_us[replies++] = o->us;
	printf("\n");
	fflush(stdout);
}

static const char *reply_name(uint32_t cmd)
{
	switch (cmd) {
	case RTE_POWER_CMD_ACK: return "ACK";
	case RTE_POWER_CMD_NACK: return "NACK";
	case RTE_POWER_FREQ_LIST: return "FREQ_LIST";
	case RTE_POWER_CAPS_LIST: return "CAPS_LIST";
	default: return "other";
	}
}

/* After a step: nothing more may arrive within the quiet window. */
static void expect_quiet(unsigned int lcore, struct outcome *o)
{
	unsigned char first[464];
	size_t n = drain(port_fd[lcore], quiet_ms, first, sizeof(first));

	if (n == 0)
		return;
	if (!o->got[0]) {
		o->cmd = command_of(first, n);
		o->size = n;
		snprintf(o->got, sizeof(o->got), "%s", reply_name(o->cmd));
	}
	snprintf(o->extra + strlen(o->extra), sizeof(o->extra) - strlen(o->extra),
		 "%sextra_bytes=%zu extra_cmd=%" PRIu32, o->extra[0] ? " " : "", n,
		 command_of(first, n));
	fail(o, "%zu bytes arrived where no (further) reply is due", n);
}

/*
 * Reads the reply to a request sent at t0 as guest_cli does, and judges it.
 * `sent` is the request (for the echo check of ACK/NACK), `want` the reply
 * command a query expects (0 for ACK/NACK).
 */
static void read_reply(unsigned int lcore, uint64_t t0, const struct rte_power_channel_packet *sent,
		       size_t reply_len, uint32_t want, enum expect e, void *reply,
		       struct outcome *o)
{
	int r = rte_power_guest_channel_receive_msg(reply, reply_len, lcore);

	o->us = (long long)(now_us() - t0);
	if (r != 0) {
		/* Nothing in DPDK's window: late, or never (the caller's quiet
		 * window judges a step with no reply due). */
		unsigned char first[464];
		size_t n;

		if (e == EXP_NONE)
			return;
		if (wait_readable(port_fd[lcore], late_ms) <= 0) {
			fail(o, "no reply (waited %d ms)", DPDK_WINDOW_MS + late_ms);
			return;
		}
		/* The time of the first byte, then the rest of what came. */
		o->us = (long long)(now_us() - t0);
		n = drain(port_fd[lcore], quiet_ms, first, sizeof(first));
		if (n == reply_len && late_is_figure) {
			/* -L: a whole reply, late: judged as this step's reply
			 * and counted, not failed (timing is the benchmark's). */
			memcpy(reply, first, n);
			late++;
			snprintf(o->extra + strlen(o->extra), sizeof(o->extra) - strlen(o->extra),
				 "%slate=1", o->extra[0] ? " " : "");
		} else if (n > 0) {
			o->cmd = command_of(first, n);
			o->size = n;
			snprintf(o->got, sizeof(o->got), "%s", reply_name(o->cmd));
			fail(o, "reply later than DPDK's 10 ms window: %lld us after the send", o->us);
			return;
		} else {
			fail(o, "no reply (waited %d ms)", DPDK_WINDOW_MS + late_ms);
			return;
		}
	}
	o->cmd = command_of(reply, reply_len);
	o->size = reply_len;
	snprintf(o->got, sizeof(o->got), "%s", reply_name(o->cmd));
	if (e == EXP_NONE) {
		fail(o, "a reply (%zu bytes) where none is due", reply_len);
	} else if (want != 0) {
		if (o->cmd != want)
			fail(o, "stale or wrong reply: command %s (%" PRIu32 "), not the query's answer",
			     reply_name(o->cmd), o->cmd);
	} else if (o->cmd != RTE_POWER_CMD_ACK && o->cmd != RTE_POWER_CMD_NACK) {
		fail(o, "stale or wrong reply: command %s (%" PRIu32 "), expected ACK/NACK",
		     reply_name(o->cmd), o->cmd);
	} else {
		const unsigned char *a = reply, *b = (const void *)sent;
		size_t i;

		for (i = 0; i < reply_len; i++) {
			if (i >= 12 && i < 16)
				continue;
			if (a[i] != b[i]) {
				fail(o, "stale reply: not an echo of this request (%s differs, byte %zu)",
				     field_at(i), i);
				break;
			}
		}
		if (e == EXP_ACK && o->cmd != RTE_POWER_CMD_ACK)
			fail(o, "NACK where an ACK is due");
		if (e == EXP_NACK && o->cmd != RTE_POWER_CMD_NACK)
			fail(o, "ACK where a NACK is due");
	}
}

static int parse_expect(const char *s, enum expect *e)
{
	unsigned int i;

	for (i = 0; s != NULL && i < sizeof(expect_names) / sizeof(expect_names[0]); i++) {
		if (strcmp(s, expect_names[i]) == 0) {
			*e = (enum expect)i;
			return 0;
		}
	}
	return -1;
}

static int parse_hours(const char *s, int *hours)
{
	int n = 0;
	char *end;

	while (*s != '\0' && n < RTE_POWER_HOURS_PER_DAY) {
		long h = strtol(s, &end, 10);

		if (end == s || h < 0 || h > 23)
			return -1;
		hours[n++] = (int)h;
		s = *end == ',' ? end + 1 : end;
	}
	return *s == '\0' ? 0 : -1;
}

static int parse_mac(const char *s, uint64_t *vfid)
{
	unsigned int b[6];
	unsigned char mac[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		mac[i] = (unsigned char)b[i];
	/* guest_cli's union of struct rte_ether_addr and uint64_t */
	*vfid = 0;
	memcpy(vfid, mac, sizeof(mac));
	return 0;
}

/* A zeroed request carrying the VM's name, as guest_cli builds its own. */
static void blank_packet(struct rte_power_channel_packet *p, uint32_t command, unsigned int lcore)
{
	memset(p, 0, sizeof(*p));
	p->command = command;
	p->resource_id = lcore;
	memcpy(p->vm_name, vm_name, strnlen(vm_name, sizeof(p->vm_name) - 1));
}

/* Fills a policy packet as guest_cli's set_policy_defaults does, from args. */
static int build_policy(struct rte_power_channel_packet *p, unsigned int lcore, const char *kind,
			const char *vcpus, char **args)
{
	char *end;
	const char *s = vcpus;

	blank_packet(p, RTE_POWER_PKT_POLICY, lcore);
	p->core_type = RTE_POWER_CORE_TYPE_VIRTUAL;
	p->workload = RTE_POWER_WL_HIGH;
	p->t_boost_status.tbEnabled = false;
	if (strcmp(kind, "traffic") == 0)
		p->policy_to_use = RTE_POWER_POLICY_TRAFFIC;
	else if (strcmp(kind, "time") == 0)
		p->policy_to_use = RTE_POWER_POLICY_TIME;
	else if (strcmp(kind, "workload") == 0)
		p->policy_to_use = RTE_POWER_POLICY_WORKLOAD;
	else if (strcmp(kind, "branch_ratio") == 0)
		p->policy_to_use = RTE_POWER_POLICY_BRANCH_RATIO;
	else
		return -1;
	while (s != NULL && *s != '\0' && p->num_vcpu < RTE_POWER_MAX_VCPU_PER_VM) {
		long v = strtol(s, &end, 10);

		if (end == s || v < 0 || v > 255)
			return -1;
		p->vcpu_to_control[p->num_vcpu++] = (uint8_t)v;
		s = *end == ',' ? end + 1 : end;
	}
	if (p->num_vcpu == 0)
		return -1;
	for (; *args != NULL; args++) {
		char *eq = strchr(*args, '=');
		const char *v;

		if (eq == NULL)
			return -1;
		*eq = '\0';
		v = eq + 1;
		if (strcmp(*args, "workload") == 0) {
			if (strcmp(v, "high") == 0)
				p->workload = RTE_POWER_WL_HIGH;
			else if (strcmp(v, "medium") == 0)
				p->workload = RTE_POWER_WL_MEDIUM;
			else if (strcmp(v, "low") == 0)
				p->workload = RTE_POWER_WL_LOW;
			else
				return -1;
		} else if (strcmp(*args, "busy") == 0) {
			if (parse_hours(v, p->timer_policy.busy_hours) != 0)
				return -1;
		} else if (strcmp(*args, "quiet") == 0) {
			if (parse_hours(v, p->timer_policy.quiet_hours) != 0)
				return -1;
		} else if (strcmp(*args, "traffic") == 0) {
			if (parse_hours(v, p->timer_policy.hours_to_use_traffic_profile) != 0)
				return -1;
		} else if (strcmp(*args, "mac") == 0) {
			if (p->nb_mac_to_monitor >= RTE_POWER_MAX_VFS ||
			    parse_mac(v, &p->vfid[p->nb_mac_to_monitor]) != 0)
				return -1;
			p->nb_mac_to_monitor++;
		} else if (strcmp(*args, "avg") == 0) {
			p->traffic_policy.avg_max_packet_thresh = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(*args, "max") == 0) {
			p->traffic_policy.max_max_packet_thresh = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(*args, "min") == 0) {
			p->traffic_policy.min_packet_thresh = (uint32_t)strtoul(v, NULL, 10);
		} else {
			return -1;
		}
	}
	return 0;
}

/*
 * librte_power sends CONNECT from a struct on its stack that it never
 * initialises. Leave that stack full of non-zero, non-UTF-8 bytes first, as
 * a real application's stack would be, so the host sees garbage there.
 */
static void __attribute__((noinline)) dirty_stack(void)
{
	volatile unsigned char junk[8192];
	size_t i;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(0xA5 ^ i);
}

/* The packet librte_power sends for rte_power_freq_* on lcore L. */
static void library_packet(struct rte_power_channel_packet *p, unsigned int lcore, uint32_t unit)
{
	memset(p, 0, sizeof(*p));
	p->command = RTE_POWER_CPU_POWER;
	p->resource_id = lcore;
	p->unit = unit;
}

static const struct {
	const char *name;
	uint32_t unit;
} units[] = {
	{ "up", RTE_POWER_SCALE_UP },
	{ "down", RTE_POWER_SCALE_DOWN },
	{ "max", RTE_POWER_SCALE_MAX },
	{ "min", RTE_POWER_SCALE_MIN },
	{ "enable_turbo", RTE_POWER_ENABLE_TURBO },
	{ "disable_turbo", RTE_POWER_DISABLE_TURBO },
};

static int call_library(uint32_t unit, unsigned int lcore)
{
	switch (unit) {
	case RTE_POWER_SCALE_UP: return rte_power_freq_up(lcore);
	case RTE_POWER_SCALE_DOWN: return rte_power_freq_down(lcore);
	case RTE_POWER_SCALE_MAX: return rte_power_freq_max(lcore);
	case RTE_POWER_SCALE_MIN: return rte_power_freq_min(lcore);
	case RTE_POWER_ENABLE_TURBO: return rte_power_freq_enable_turbo(lcore);
	case RTE_POWER_DISABLE_TURBO: return rte_power_freq_disable_turbo(lcore);
	default: return -1;
	}
}

static void setup_error(const char *what, const char *arg)
{
	printf("step=%u error=\"%s%s\" result=FAIL\n", step_no, what, arg);
	fflush(stdout);
	exit(2);
}

/* ACK/NACK steps: send with `send` (librte_power or the raw API), then read. */
static void verdict_step(const char *op, unsigned int lcore, const char *sent_name,
			 struct rte_power_channel_packet *sent, int (*send)(void *, unsigned int),
			 void *ctx, enum expect e)
{
	struct outcome o = { 0 };
	struct rte_power_channel_packet reply;
	uint64_t t0 = now_us();

	if (send(ctx, lcore) != 0)
		setup_error("send failed: ", op);
	read_reply(lcore, t0, sent, sizeof(reply), 0, e, &reply, &o);
	if (!o.fail || e == EXP_NONE)
		expect_quiet(lcore, &o);
	else
		drain(port_fd[lcore], quiet_ms, NULL, 0);
	report(op, lcore, sent_name, e, &o);
}

static int send_library(void *ctx, unsigned int lcore)
{
	return call_library(*(uint32_t *)ctx, lcore) == 1 ? 0 : -1;
}

static int send_raw(void *ctx, unsigned int lcore)
{
	return rte_power_guest_channel_send_msg(ctx, lcore);
}

static void query_step(unsigned int lcore, const char *kind, enum expect e)
{
	struct rte_power_channel_packet pkt;
	struct rte_power_channel_packet_freq_list fl;
	struct rte_power_channel_packet_caps_list cl;
	struct outcome o = { 0 };
	bool list = strstr(kind, "_list") != NULL;
	bool caps = strncmp(kind, "caps", 4) == 0;
	uint64_t t0;
	unsigned int i;
	char *x = o.extra;
	size_t room = sizeof(o.extra);

	/* As guest_cli: a zeroed packet, its vm_name, resource_id for one core. */
	if (caps)
		blank_packet(&pkt, list ? RTE_POWER_QUERY_CAPS_LIST : RTE_POWER_QUERY_CAPS, lcore);
	else
		blank_packet(&pkt, list ? RTE_POWER_QUERY_FREQ_LIST : RTE_POWER_QUERY_FREQ, lcore);
	if (list)
		pkt.resource_id = 0;
	memset(&fl, 0, sizeof(fl));
	memset(&cl, 0, sizeof(cl));
	t0 = now_us();
	if (rte_power_guest_channel_send_msg(&pkt, lcore) != 0)
		setup_error("send failed: query ", kind);
	if (caps)
		read_reply(lcore, t0, &pkt, sizeof(cl), RTE_POWER_CAPS_LIST, e, &cl, &o);
	else
		read_reply(lcore, t0, &pkt, sizeof(fl), RTE_POWER_FREQ_LIST, e, &fl, &o);
	if (!o.fail && e == EXP_REPLY) {
		/* What guest_cli prints: every vCPU for a list, vCPU L otherwise. */
		unsigned int from = list ? 0 : lcore, to = list ? (caps ? cl.num_vcpu : fl.num_vcpu) : lcore + 1;

		if (to > RTE_POWER_MAX_VCPU_PER_VM)
			to = RTE_POWER_MAX_VCPU_PER_VM;
		for (i = from; i < to; i++) {
			int n = caps ? snprintf(x, room, "%svcpu%u=turbo:%" PRIu64 ",priority:%" PRIu64,
						i == from ? "" : " ", i, cl.turbo[i], cl.priority[i])
				     : snprintf(x, room, "%svcpu%u=%" PRIu32 "kHz", i == from ? "" : " ", i,
						fl.freq_list[i]);

			if (n < 0 || (size_t)n >= room)
				break;
			x += n;
			room -= (size_t)n;
		}
		snprintf(x, room, " num_vcpu=%u", caps ? cl.num_vcpu : fl.num_vcpu);
	}
	if (!o.fail || e == EXP_NONE)
		expect_quiet(lcore, &o);
	else
		drain(port_fd[lcore], quiet_ms, NULL, 0);
	report("query", lcore, kind, e, &o);
}

/* Steps with no reply due (CONNECT inside init, REMOVE): the quiet window. */
static void quiet_step(const char *op, unsigned int lcore, const char *sent, enum expect e)
{
	struct outcome o = { 0 };

	expect_quiet(lcore, &o);
	report(op, lcore, sent, e, &o);
}

static void final_drain(void)
{
	unsigned int l;

	for (l = 0; l < MAX_LCORES; l++) {
		unsigned char first[464];
		struct outcome o = { 0 };
		size_t n;

		if (port_fd[l] < 0)
			continue;
		step_no++;
		n = drain(port_fd[l], drain_ms, first, sizeof(first));
		if (n > 0) {
			o.cmd = command_of(first, n);
			o.size = n;
			snprintf(o.got, sizeof(o.got), "leftover");
			fail(&o, "%zu bytes left in the port at the end", n);
		}
		report("final_drain", l, "nothing", EXP_NONE, &o);
		rte_power_exit(l);
		port_fd[l] = -1;
	}
}

static unsigned int parse_lcore(const char *s)
{
	char *end;
	long l = s != NULL ? strtol(s, &end, 10) : -1;

	if (s == NULL || *end != '\0' || l < 0 || l >= MAX_LCORES)
		setup_error("bad lcore: ", s != NULL ? s : "(none)");
	return (unsigned int)l;
}

static void need_port(unsigned int lcore)
{
	if (port_fd[lcore] < 0)
		setup_error("lcore not initialised (init L first)", "");
}

static void run_line(char *line)
{
	char *tok[24];
	int n = 0;
	char *save = NULL, *t;
	enum expect e = EXP_NONE;
	unsigned int lcore;

	for (t = strtok_r(line, " \t\r\n", &save); t != NULL && n < 23;
	     t = strtok_r(NULL, " \t\r\n", &save))
		tok[n++] = t;
	tok[n] = NULL;
	if (n == 0 || tok[0][0] == '#')
		return;
	step_no++;
	lcore = parse_lcore(tok[1]);
	if (strcmp(tok[0], "init") == 0) {
		dirty_stack();
		if (rte_power_init(lcore) != 0)
			setup_error("rte_power_init failed for lcore ", tok[1]);
		port_fd[lcore] = find_port_fd(lcore);
		if (port_fd[lcore] < 0)
			setup_error("cannot find librte_power's fd for lcore ", tok[1]);
		quiet_step("init", lcore, "CONNECT", EXP_NONE);
		return;
	}
	need_port(lcore);
	if (strcmp(tok[0], "power") == 0 && n == 4 && parse_expect(tok[3], &e) == 0) {
		struct rte_power_channel_packet sent;
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strcmp(tok[2], units[i].name) != 0)
				continue;
			library_packet(&sent, lcore, units[i].unit);
			verdict_step("power", lcore, tok[2], &sent, send_library,
				     (void *)&units[i].unit, e);
			return;
		}
		setup_error("unknown unit: ", tok[2]);
	} else if (strcmp(tok[0], "unit") == 0 && n == 4 && parse_expect(tok[3], &e) == 0) {
		struct rte_power_channel_packet sent;

		library_packet(&sent, lcore, (uint32_t)strtoul(tok[2], NULL, 10));
		verdict_step("unit", lcore, tok[2], &sent, send_raw, &sent, e);
	} else if (strcmp(tok[0], "policy") == 0 && n >= 5 && parse_expect(tok[3], &e) == 0) {
		struct rte_power_channel_packet sent;

		if (build_policy(&sent, lcore, tok[2], tok[4], &tok[5]) != 0)
			setup_error("bad policy: ", tok[2]);
		verdict_step("policy", lcore, tok[2], &sent, send_raw, &sent, e);
	} else if (strcmp(tok[0], "query") == 0 && n == 4 && parse_expect(tok[3], &e) == 0) {
		if (strcmp(tok[2], "freq") != 0 && strcmp(tok[2], "freq_list") != 0 &&
		    strcmp(tok[2], "caps") != 0 && strcmp(tok[2], "caps_list") != 0)
			setup_error("unknown query: ", tok[2]);
		query_step(lcore, tok[2], e);
	} else if (strcmp(tok[0], "remove") == 0 && n == 3 && parse_expect(tok[2], &e) == 0) {
		struct rte_power_channel_packet pkt;

		blank_packet(&pkt, RTE_POWER_PKT_POLICY_REMOVE, lcore);
		if (e == EXP_NONE) {
			if (rte_power_guest_channel_send_msg(&pkt, lcore) != 0)
				setup_error("send failed: ", "remove");
			quiet_step("remove", lcore, "PKT_POLICY_REMOVE", e);
		} else {
			verdict_step("remove", lcore, "PKT_POLICY_REMOVE", &pkt, send_raw, &pkt, e);
		}
	} else {
		setup_error("bad step: ", tok[0]);
	}
}

static int cmp_us(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr, "usage: dpdk_power_guest [-n VM_NAME] [-q QUIET_MS] [-l LATE_MS] "
			"[-d DRAIN_MS] [-L] < steps\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char line[512];
	int opt;

	while ((opt = getopt(argc, argv, "n:q:l:d:L")) != -1) {
		switch (opt) {
		case 'L':
			late_is_figure = true;
			break;
		case 'n':
			snprintf(vm_name, sizeof(vm_name), "%s", optarg);
			break;
		case 'q':
			quiet_ms = atoi(optarg);
			break;
		case 'l':
			late_ms = atoi(optarg);
			break;
		case 'd':
			drain_ms = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (rte_power_set_env(PM_ENV_KVM_VM) != 0)
		setup_error("rte_power_set_env(PM_ENV_KVM_VM) failed", "");
	printf("start version=\"%s\" env=kvm_vm vm_name=%s quiet_ms=%d late_ms=%d drain_ms=%d\n",
	       rte_version(), vm_name, quiet_ms, late_ms, drain_ms);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL)
		run_line(line);
	final_drain();
	qsort(reply_us, replies, sizeof(reply_us[0]), cmp_us);
	printf("summary steps=%u failures=%u replies=%zu late=%u p50_us=%lld max_us=%lld\n",
	       step_no, failures, replies, late, replies ? reply_us[replies / 2] : 0,
	       replies ? reply_us[replies - 1] : 0);
	fflush(stdout);
	return failures == 0 ? 0 : 1;
}
