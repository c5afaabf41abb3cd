/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The handover blob's encoding (handover.h): every field type written and
 * read back, the header checks of handover_open against short, foreign,
 * other-version, other-kind, mis-sized and bit-flipped blobs, the
 * cursor's latch on hostile bodies, and the descriptor directory's
 * ownership of its fds.  Bodies a writer would never produce are written
 * byte by byte (handover_put_u8), then wrapped in a good header, so that
 * they reach the cursor behind a checksum that holds.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <zlib.h>

#include "handover.h"
#include "unit.h"

Suite	*handover_suite(void);

static struct handover_buf buf;
static struct handover_cursor cur;
static char err[512];

static void
setup(void)
{
	memset(&buf, 0, sizeof(buf));
	memset(&cur, 0, sizeof(cur));
	err[0] = '\0';
}

static void
teardown(void)
{
	handover_buf_free(&buf);
}

/* Finishes buf and opens it as kind; the cursor is then on its body. */
static void
open_buf(enum handover_kind kind)
{
	ck_assert_int_eq(handover_finish(&buf), 0);
	ck_assert_msg(handover_open(&cur, buf.data, buf.len, kind, err,
	    sizeof(err)) == 0, "open: %s", err);
	ck_assert(!cur.failed);
}

/* A daemon blob whose body is the n bytes at body, opened. */
static void
open_body(const void *body, size_t n)
{
	const uint8_t *p = body;
	size_t i;

	handover_buf_free(&buf);
	ck_assert_int_eq(handover_begin(&buf, HANDOVER_DAEMON), 0);
	for (i = 0; i < n; i++)
		handover_put_u8(&buf, p[i]);
	open_buf(HANDOVER_DAEMON);
}

/* The cursor failed (and says why, with why in handover_close's err). */
static void
expect_failed(const char *why)
{
	ck_assert(cur.failed);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, why) != NULL, "\"%s\" not in \"%s\"", why,
	    err);
}

/* handover_open refuses data[len] as kind, with why in its sentence. */
static void
expect_refused(const void *data, size_t len, enum handover_kind kind,
    const char *why)
{
	err[0] = '\0';
	ck_assert_int_eq(handover_open(&cur, data, len, kind, err,
	    sizeof(err)), -1);
	ck_assert_msg(strstr(err, why) != NULL, "\"%s\" not in \"%s\"", why,
	    err);
	/* A refused blob leaves a cursor that reads nothing. */
	ck_assert(cur.failed);
	ck_assert_uint_eq(handover_get_u8(&cur), 0);
}

static uint64_t
le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return v;
}

/* A small valid blob: one of each field (the bit-flip test's subject). */
static void
small_blob(void)
{
	size_t mark;

	ck_assert_int_eq(handover_begin(&buf, HANDOVER_DAEMON), 0);
	handover_put_u8(&buf, 0x5a);
	handover_put_u16(&buf, 0x1234);
	handover_put_u32(&buf, 0xdeadbeef);
	handover_put_u64(&buf, 0x0102030405060708ull);
	handover_put_name(&buf, "vrng.exe");
	handover_put_str(&buf, "/dev/urandom");
	mark = handover_nest_begin(&buf);
	handover_put_u32(&buf, 7);
	handover_nest_end(&buf, mark);
	ck_assert_int_eq(handover_finish(&buf), 0);
}

/* --- encoding -------------------------------------------------------- */

START_TEST(round_trip_every_type)
{
	char name[HANDOVER_NAME_MAX], longname[HANDOVER_NAME_MAX];
	char path[4096], longpath[4096];
	struct handover_cursor sub;
	size_t mark, inner;

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';

	ck_assert_int_eq(handover_begin(&buf, HANDOVER_GUEST), 0);
	handover_put_u8(&buf, 0);
	handover_put_u8(&buf, UINT8_MAX);
	handover_put_u16(&buf, 0);
	handover_put_u16(&buf, UINT16_MAX);
	handover_put_u32(&buf, 0);
	handover_put_u32(&buf, UINT32_MAX);
	handover_put_u64(&buf, 0);
	handover_put_u64(&buf, UINT64_MAX);
	handover_put_u64(&buf, 0x0102030405060708ull);
	handover_put_u8(&buf, 0);		/* bools */
	handover_put_u8(&buf, 1);
	handover_put_u32(&buf, 509);		/* a count at its max */
	handover_put_name(&buf, "");
	handover_put_name(&buf, "a");
	handover_put_name(&buf, longname);
	handover_put_str(&buf, "");
	handover_put_str(&buf, longpath);
	mark = handover_nest_begin(&buf);
	handover_put_u16(&buf, 0xbeef);
	inner = handover_nest_begin(&buf);	/* an empty record inside */
	handover_nest_end(&buf, inner);
	handover_nest_end(&buf, mark);
	handover_put_u8(&buf, 0x77);
	ck_assert(!buf.failed);
	open_buf(HANDOVER_GUEST);

	ck_assert_uint_eq(handover_get_u8(&cur), 0);
	ck_assert_uint_eq(handover_get_u8(&cur), UINT8_MAX);
	ck_assert_uint_eq(handover_get_u16(&cur), 0);
	ck_assert_uint_eq(handover_get_u16(&cur), UINT16_MAX);
	ck_assert_uint_eq(handover_get_u32(&cur), 0);
	ck_assert_uint_eq(handover_get_u32(&cur), UINT32_MAX);
	ck_assert_uint_eq(handover_get_u64(&cur), 0);
	ck_assert_uint_eq(handover_get_u64(&cur), UINT64_MAX);
	ck_assert_uint_eq(handover_get_u64(&cur), 0x0102030405060708ull);
	ck_assert(!handover_get_bool(&cur));
	ck_assert(handover_get_bool(&cur));
	ck_assert_uint_eq(handover_get_count(&cur, 509), 509);
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, "");
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, "a");
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, longname);
	handover_get_str(&cur, path, sizeof(path));
	ck_assert_str_eq(path, "");
	handover_get_str(&cur, path, sizeof(path));
	ck_assert_str_eq(path, longpath);
	handover_get_nested(&cur, &sub);
	ck_assert(!sub.failed);
	ck_assert_uint_eq(sub.left, 2 + 4);
	ck_assert_uint_eq(handover_get_u16(&sub), 0xbeef);
	{
		struct handover_cursor empty;

		handover_get_nested(&sub, &empty);
		ck_assert(!empty.failed);
		ck_assert_uint_eq(empty.left, 0);
		ck_assert_int_eq(handover_close(&empty, err, sizeof(err)), 0);
	}
	ck_assert_int_eq(handover_close(&sub, err, sizeof(err)), 0);
	ck_assert_uint_eq(handover_get_u8(&cur), 0x77);
	ck_assert_msg(handover_close(&cur, err, sizeof(err)) == 0, "%s", err);
}
END_TEST

/* The header as handover.h describes it, the body little-endian. */
START_TEST(header_and_byte_order)
{
	const uint8_t *h;

	ck_assert_int_eq(handover_begin(&buf, HANDOVER_GUEST), 0);
	handover_put_u32(&buf, 0x11223344);
	handover_put_u16(&buf, 0x5566);
	ck_assert_int_eq(handover_finish(&buf), 0);
	h = buf.data;
	ck_assert_uint_eq(buf.len, HANDOVER_HEADER_SIZE + 6);
	ck_assert_int_eq(memcmp(h, HANDOVER_MAGIC, 8), 0);
	ck_assert_uint_eq(le(h + 8, 4), HANDOVER_VERSION);
	ck_assert_uint_eq(le(h + 12, 4), HANDOVER_GUEST);
	ck_assert_uint_eq(le(h + 16, 8), 6);
	ck_assert_uint_eq(le(h + 24, 4), crc32(crc32(0L, Z_NULL, 0),
	    h + HANDOVER_HEADER_SIZE, 6));
	ck_assert_uint_eq(le(h + 28, 4), 0);
	ck_assert_int_eq(memcmp(h + HANDOVER_HEADER_SIZE,
	    "\x44\x33\x22\x11\x66\x55", 6), 0);
}
END_TEST

/* What the reader would refuse, the writer refuses to write. */
START_TEST(writer_refuses_bad_fields)
{
	char s[4097];

	memset(s, 'x', sizeof(s) - 1);
	s[HANDOVER_NAME_MAX] = '\0';		/* 64 bytes: one too many */
	ck_assert_int_eq(handover_begin(&buf, HANDOVER_DAEMON), 0);
	handover_put_name(&buf, s);
	ck_assert(buf.failed);
	ck_assert_int_eq(handover_finish(&buf), -1);

	handover_buf_free(&buf);
	ck_assert_int_eq(handover_begin(&buf, HANDOVER_DAEMON), 0);
	handover_put_name(&buf, "a:b");
	ck_assert_int_eq(handover_finish(&buf), -1);

	handover_buf_free(&buf);
	ck_assert_int_eq(handover_begin(&buf, HANDOVER_DAEMON), 0);
	memset(s, 'x', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';		/* 4096 bytes: one too many */
	handover_put_str(&buf, s);
	ck_assert_int_eq(handover_finish(&buf), -1);

	/* The latch holds: later fields and records change nothing. */
	handover_put_u32(&buf, 1);
	handover_nest_end(&buf, handover_nest_begin(&buf));
	ck_assert(buf.failed);
	ck_assert_int_eq(handover_finish(&buf), -1);
}
END_TEST

/* --- handover_open --------------------------------------------------- */

START_TEST(short_header_refused)
{
	size_t len;

	small_blob();
	for (len = 0; len < HANDOVER_HEADER_SIZE; len++)
		expect_refused(buf.data, len, HANDOVER_DAEMON, "no header");
}
END_TEST

START_TEST(wrong_magic_refused)
{
	small_blob();
	buf.data[0] = 'v';
	expect_refused(buf.data, buf.len, HANDOVER_DAEMON,
	    "not a vhost-device-rng state blob");
}
END_TEST

START_TEST(other_version_refused)
{
	const uint32_t versions[] = { 0, HANDOVER_VERSION + 1, UINT32_MAX };
	unsigned i;

	small_blob();
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		buf.data[8] = (uint8_t)versions[i];
		buf.data[9] = (uint8_t)(versions[i] >> 8);
		buf.data[10] = (uint8_t)(versions[i] >> 16);
		buf.data[11] = (uint8_t)(versions[i] >> 24);
		expect_refused(buf.data, buf.len, HANDOVER_DAEMON,
		    "this binary reads version 1 only");
	}
}
END_TEST

START_TEST(other_kind_refused)
{
	small_blob();
	expect_refused(buf.data, buf.len, HANDOVER_GUEST,
	    "state blob of kind 1 where kind 2 was expected");
	buf.data[12] = 3;
	expect_refused(buf.data, buf.len, HANDOVER_DAEMON,
	    "state blob of kind 3 where kind 1 was expected");
}
END_TEST

/* The header's length against what is there: both ways, both fields. */
START_TEST(body_length_mismatch_refused)
{
	uint8_t *copy;
	size_t len;

	small_blob();
	len = buf.len;
	/* The data: one byte short, one byte more, the body missing. */
	expect_refused(buf.data, len - 1, HANDOVER_DAEMON,
	    "truncated or has extra bytes");
	ck_assert_ptr_nonnull(copy = calloc(1, len + 1));
	memcpy(copy, buf.data, len);
	expect_refused(copy, len + 1, HANDOVER_DAEMON,
	    "truncated or has extra bytes");
	expect_refused(buf.data, HANDOVER_HEADER_SIZE, HANDOVER_DAEMON,
	    "truncated or has extra bytes");
	/* The header's figure: one more, one less, 2^64 - 1. */
	copy[16]++;
	expect_refused(copy, len, HANDOVER_DAEMON, "truncated or has extra");
	copy[16] -= 2;
	expect_refused(copy, len, HANDOVER_DAEMON, "truncated or has extra");
	memset(copy + 16, 0xff, 8);
	expect_refused(copy, len, HANDOVER_DAEMON,
	    "header says 18446744073709551615 body bytes");
	free(copy);
}
END_TEST

START_TEST(checksum_mismatch_refused)
{
	small_blob();
	buf.data[24] ^= 0xff;
	expect_refused(buf.data, buf.len, HANDOVER_DAEMON, "checksum");
	buf.data[24] ^= 0xff;
	/* The body changed, the checksum did not. */
	buf.data[HANDOVER_HEADER_SIZE] = 0xa5;
	expect_refused(buf.data, buf.len, HANDOVER_DAEMON,
	    "state blob is corrupt: checksum");
}
END_TEST

START_TEST(reserved_word_refused)
{
	small_blob();
	buf.data[31] = 0x80;
	expect_refused(buf.data, buf.len, HANDOVER_DAEMON, "reserved");
}
END_TEST

/*
 * Every single-bit flip of a small blob is refused.  The checksum covers
 * the body only; the header is not covered, and needs not be: each of its
 * fields must equal one value (magic, version, kind, the real body length,
 * the checksum, a zero word), so any flip in it fails one comparison.  No
 * bit of the blob is covered by neither.  The sentence names the field.
 */
START_TEST(every_bit_flip_refused)
{
	static const struct {
		size_t		 end;		/* the field's first byte after */
		const char	*why;
	} fields[] = {
		{ 8, "no header" },
		{ 12, "format version" },
		{ 16, "kind" },
		{ 24, "truncated or has extra bytes" },
		{ 28, "checksum" },
		{ HANDOVER_HEADER_SIZE, "reserved" },
		{ SIZE_MAX, "checksum" },
	};
	unsigned f = 0, flips = 0;
	size_t byte;
	int bit;

	small_blob();
	for (byte = 0; byte < buf.len; byte++) {
		while (byte >= fields[f].end)
			f++;
		for (bit = 0; bit < 8; bit++) {
			buf.data[byte] ^= (uint8_t)(1u << bit);
			expect_refused(buf.data, buf.len, HANDOVER_DAEMON,
			    fields[f].why);
			buf.data[byte] ^= (uint8_t)(1u << bit);
			flips++;
		}
	}
	ck_assert_uint_eq(flips, 8 * buf.len);
	/* Unflipped, it opens. */
	open_buf(HANDOVER_DAEMON);
}
END_TEST

/* --- the cursor ------------------------------------------------------ */

/* A short field fails the cursor; it stays failed and reads 0s. */
START_TEST(read_past_end_latches)
{
	char name[HANDOVER_NAME_MAX], path[64];
	struct handover_cursor sub;

	open_body("\x01\x02\x03", 3);
	ck_assert_uint_eq(handover_get_u32(&cur), 0);
	ck_assert(cur.failed);
	/* The three bytes are still there: nothing reads them now. */
	ck_assert_uint_eq(handover_get_u8(&cur), 0);
	ck_assert_uint_eq(handover_get_u16(&cur), 0);
	ck_assert_uint_eq(handover_get_u64(&cur), 0);
	ck_assert(!handover_get_bool(&cur));
	ck_assert_uint_eq(handover_get_count(&cur, 10), 0);
	strcpy(name, "stale");
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, "");
	strcpy(path, "stale");
	handover_get_str(&cur, path, sizeof(path));
	ck_assert_str_eq(path, "");
	handover_get_nested(&cur, &sub);
	ck_assert(sub.failed);
	ck_assert_uint_eq(handover_get_u8(&sub), 0);
	expect_failed("it ends in the middle of a field");

	/* Each width, one byte short. */
	open_body("\x01", 1);
	ck_assert_uint_eq(handover_get_u16(&cur), 0);
	expect_failed("ends in the middle");
	open_body("\x01\x02\x03\x04\x05\x06\x07", 7);
	ck_assert_uint_eq(handover_get_u64(&cur), 0);
	expect_failed("ends in the middle");
	open_body("", 0);
	ck_assert_uint_eq(handover_get_u8(&cur), 0);
	expect_failed("ends in the middle");
}
END_TEST

/* The first reason is the one reported. */
START_TEST(first_failure_reported)
{
	open_body("\x02", 1);
	(void)handover_get_bool(&cur);
	handover_fail(&cur, "a later reason");
	(void)handover_get_u64(&cur);
	expect_failed("neither 0 nor 1");
	ck_assert_ptr_null(strstr(err, "later"));
}
END_TEST

START_TEST(name_refuses_bad_bytes)
{
	/* ':' (the fd-store separator), control bytes, space, DEL, 8-bit. */
	static const char *const bad[] = { "a:b", ":", "a\x01", "\x1f",
	    "a b", " ", "\x7f", "a\x80", "\xff", "\t", "a\n" };
	char name[HANDOVER_NAME_MAX], body[2 + HANDOVER_NAME_MAX];
	unsigned i;
	size_t n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = strlen(bad[i]);
		body[0] = (char)n;
		memcpy(body + 1, bad[i], n);
		open_body(body, 1 + n);
		strcpy(name, "stale");
		handover_get_name(&cur, name);
		ck_assert_str_eq(name, "");
		expect_failed("a descriptor name has bad characters");
	}
	/* A NUL inside: not the shorter name it would make. */
	open_body("\x04" "ab\0c", 5);
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, "");
	expect_failed("a descriptor name has bad characters");
	open_body("\x01\0", 2);
	handover_get_name(&cur, name);
	expect_failed("bad characters");
}
END_TEST

START_TEST(name_length_limits)
{
	char name[HANDOVER_NAME_MAX], body[2 + 255];

	memset(body, 'x', sizeof(body));
	/* 63 bytes: the longest there is. */
	body[0] = HANDOVER_NAME_MAX - 1;
	open_body(body, HANDOVER_NAME_MAX);
	handover_get_name(&cur, name);
	ck_assert_uint_eq(strlen(name), HANDOVER_NAME_MAX - 1);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
	/* 64 and 255: too long, whatever follows. */
	body[0] = HANDOVER_NAME_MAX;
	open_body(body, 1 + HANDOVER_NAME_MAX);
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, "");
	expect_failed("a descriptor name is too long");
	body[0] = (char)255;
	open_body(body, sizeof(body));
	handover_get_name(&cur, name);
	expect_failed("too long");
	/* A length that runs past the end. */
	body[0] = 10;
	open_body(body, 5);
	handover_get_name(&cur, name);
	ck_assert_str_eq(name, "");
	expect_failed("ends in the middle");
}
END_TEST

START_TEST(str_limits)
{
	char out[8];

	open_body("\x07\0abcdefg", 9);		/* 7 bytes in out[8]: fits */
	handover_get_str(&cur, out, sizeof(out));
	ck_assert_str_eq(out, "abcdefg");
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
	open_body("\x08\0abcdefgh", 10);
	handover_get_str(&cur, out, sizeof(out));
	ck_assert_str_eq(out, "");
	expect_failed("a path is too long");
	open_body("\x03\0a\0b", 5);
	handover_get_str(&cur, out, sizeof(out));
	ck_assert_str_eq(out, "");
	expect_failed("a path holds a NUL byte");
	open_body("\xff\xff" "abc", 5);
	handover_get_str(&cur, out, sizeof(out));
	expect_failed("too long");
}
END_TEST

START_TEST(count_over_max_refused)
{
	open_body("\x09\0\0\0\x0a\0\0\0", 8);
	ck_assert_uint_eq(handover_get_count(&cur, 9), 9);
	ck_assert(!cur.failed);
	ck_assert_uint_eq(handover_get_count(&cur, 9), 0);
	expect_failed("a count is out of range");
	open_body("\xff\xff\xff\xff", 4);
	ck_assert_uint_eq(handover_get_count(&cur, 65536), 0);
	expect_failed("out of range");
	/* 0 of at most 0. */
	open_body("\0\0\0\0", 4);
	ck_assert_uint_eq(handover_get_count(&cur, 0), 0);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
}
END_TEST

START_TEST(bool_of_two_refused)
{
	open_body("\x01\x00\x02", 3);
	ck_assert(handover_get_bool(&cur));
	ck_assert(!handover_get_bool(&cur));
	ck_assert(!cur.failed);
	ck_assert(!handover_get_bool(&cur));
	expect_failed("a flag is neither 0 nor 1");
	open_body("\xff", 1);
	ck_assert(!handover_get_bool(&cur));
	expect_failed("neither 0 nor 1");
}
END_TEST

/* A record that claims more than there is fails itself and its parent. */
START_TEST(nested_claims_too_much)
{
	struct handover_cursor sub;

	/* Five claimed, four there. */
	open_body("\x05\0\0\0\x01\x02\x03\x04", 8);
	handover_get_nested(&cur, &sub);
	ck_assert(sub.failed);
	ck_assert_uint_eq(sub.left, 0);
	ck_assert_uint_eq(handover_get_u8(&sub), 0);
	ck_assert_int_eq(handover_close(&sub, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "ends in the middle"));
	expect_failed("ends in the middle");
	/* 2^32 - 1 claimed. */
	open_body("\xff\xff\xff\xff\x01", 5);
	handover_get_nested(&cur, &sub);
	ck_assert(sub.failed);
	expect_failed("ends in the middle");
	/* The length itself cut short. */
	open_body("\x01\0", 2);
	handover_get_nested(&cur, &sub);
	ck_assert(sub.failed);
	expect_failed("ends in the middle");
}
END_TEST

/* A record reads only its bytes; the parent moves past it anyway. */
START_TEST(nested_bounds_the_record)
{
	struct handover_cursor sub;

	open_body("\x02\0\0\0\x11\x22\x33\x44", 8);
	handover_get_nested(&cur, &sub);
	ck_assert(!sub.failed);
	/* Four wanted, two in the record: the parent's bytes stay out. */
	ck_assert_uint_eq(handover_get_u32(&sub), 0);
	ck_assert(sub.failed);
	ck_assert(!cur.failed);
	ck_assert_uint_eq(handover_get_u16(&cur), 0x4433);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);

	/* A record read only in part is caught by its own close. */
	open_body("\x02\0\0\0\x11\x22", 6);
	handover_get_nested(&cur, &sub);
	ck_assert_uint_eq(handover_get_u8(&sub), 0x11);
	ck_assert_int_eq(handover_close(&sub, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "bytes after its last field"));
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
}
END_TEST

START_TEST(trailing_bytes_refused)
{
	open_body("\x01\x02", 2);
	ck_assert_uint_eq(handover_get_u8(&cur), 1);
	ck_assert(!cur.failed);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "state blob refused: it has bytes after its "
	    "last field");
	ck_assert(cur.failed);
	/* Read to the end: closes. */
	open_body("\x01\x02", 2);
	ck_assert_uint_eq(handover_get_u16(&cur), 0x0201);
	ck_assert_int_eq(handover_close(&cur, err, sizeof(err)), 0);
}
END_TEST

/* --- the descriptor directory --------------------------------------- */

static ino_t
inode(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	return st.st_ino;
}

static int
an_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(fds_dup_by_name)
{
	struct handover_fds d = { 0 };
	int before = unit_count_fds(), a, b, got;

	a = unit_memfd("a", 4096);
	b = an_eventfd();
	ck_assert_int_eq(handover_fds_add(&d, "vrng.a", a), 0);
	ck_assert_int_eq(handover_fds_add(&d, "vrng.b", b), 0);
	ck_assert_int_eq(handover_fds_dup(&d, "vrng.c"), -1);
	ck_assert_int_eq(handover_fds_dup(&d, ""), -1);
	ck_assert_int_eq(handover_fds_dup(&d, "vrng."), -1);
	ck_assert(!d.v[0].used && !d.v[1].used);

	got = handover_fds_dup(&d, "vrng.b");
	ck_assert_int_ge(got, 3);
	ck_assert_int_ne(got, b);
	ck_assert_uint_eq(inode(got), inode(b));
	ck_assert_int_eq(fcntl(got, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert(d.v[1].used);
	ck_assert(!d.v[0].used);
	close(got);
	/* The original stays in the directory: a second user gets one too. */
	got = handover_fds_dup(&d, "vrng.b");
	ck_assert_uint_eq(inode(got), inode(b));
	close(got);

	handover_fds_release(&d);
	ck_assert(unit_fd_closed(a));
	ck_assert(unit_fd_closed(b));
	ck_assert_ptr_null(d.v);
	ck_assert_uint_eq(d.n, 0);
	ck_assert_int_eq(unit_count_fds(), before);
	handover_fds_release(&d);	/* empty: harmless */
}
END_TEST

/* Names that repeat: the first entry with a descriptor serves. */
START_TEST(fds_duplicate_names)
{
	struct handover_fds d = { 0 };
	int before = unit_count_fds(), a, b, got;

	a = unit_memfd("a", 4096);
	b = unit_memfd("b", 4096);
	ck_assert_int_eq(handover_fds_add(&d, "twice", -1), 0);
	ck_assert_int_eq(handover_fds_add(&d, "twice", a), 0);
	ck_assert_int_eq(handover_fds_add(&d, "twice", b), 0);
	got = handover_fds_dup(&d, "twice");
	ck_assert_uint_eq(inode(got), inode(a));
	close(got);
	ck_assert(!d.v[0].used && d.v[1].used && !d.v[2].used);
	/* An entry named "" is never found. */
	ck_assert_int_eq(handover_fds_add(&d, "", an_eventfd()), 0);
	ck_assert_int_eq(handover_fds_dup(&d, ""), -1);
	handover_fds_release(&d);
	ck_assert(unit_fd_closed(a));
	ck_assert(unit_fd_closed(b));
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* The directory grows past its first allocation; release closes all. */
START_TEST(fds_release_closes_every_fd)
{
	struct handover_fds d = { 0 };
	int before = unit_count_fds(), fds[100], got;
	char name[HANDOVER_NAME_MAX];
	unsigned i;

	for (i = 0; i < 100; i++) {
		fds[i] = an_eventfd();
		snprintf(name, sizeof(name), "vrng.%u", i);
		ck_assert_int_eq(handover_fds_add(&d, name, fds[i]), 0);
	}
	ck_assert_uint_eq(d.n, 100);
	ck_assert_int_eq(unit_count_fds(), before + 100);
	for (i = 0; i < 100; i += 9) {
		snprintf(name, sizeof(name), "vrng.%u", i);
		got = handover_fds_dup(&d, name);
		ck_assert_uint_eq(inode(got), inode(fds[i]));
		close(got);
	}
	handover_fds_release(&d);
	for (i = 0; i < 100; i++)
		ck_assert_msg(unit_fd_closed(fds[i]), "fd %u left open", i);
	ck_assert_int_eq(unit_count_fds(), before);
}
END_TEST

/* --- blobs in fds ------------------------------------------------------ */

START_TEST(memfd_read_back)
{
	char link[64], target[128];
	uint8_t *got;
	size_t len = 0;
	ssize_t n;
	int fd;

	small_blob();
	ck_assert_int_ge(fd = handover_memfd(&buf, "vrng-test-state"), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ck_assert_int_gt(n = readlink(link, target, sizeof(target) - 1), 0);
	target[n] = '\0';
	ck_assert_str_eq(target, "/memfd:vrng-test-state (deleted)");
	ck_assert_ptr_nonnull(got = handover_read_fd(fd, &len));
	ck_assert_uint_eq(len, buf.len);
	ck_assert_int_eq(memcmp(got, buf.data, len), 0);
	ck_assert_int_eq(handover_open(&cur, got, len, HANDOVER_DAEMON, err,
	    sizeof(err)), 0);
	free(got);
	close(fd);
}
END_TEST

/* Only a regular file of 1 .. HANDOVER_MAX_BYTES bytes is read. */
START_TEST(read_fd_refusals)
{
	size_t len;
	int fd, p[2];

	fd = unit_memfd("vrng-test-state", 0);
	ck_assert_ptr_null(handover_read_fd(fd, &len));
	ck_assert_int_eq(ftruncate(fd, HANDOVER_MAX_BYTES + 1), 0);
	ck_assert_ptr_null(handover_read_fd(fd, &len));
	close(fd);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], "VRNGSTAT", 8), 8);
	ck_assert_ptr_null(handover_read_fd(p[0], &len));
	close(p[0]);
	close(p[1]);
	ck_assert_int_ge(fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
	    0);
	ck_assert_ptr_null(handover_read_fd(fd, &len));
	close(fd);
	ck_assert_ptr_null(handover_read_fd(-1, &len));
}
END_TEST

START_TEST(name_ok_rules)
{
	char s[HANDOVER_NAME_MAX + 1];

	ck_assert(handover_name_ok("vrng.0.1f.kick.0"));
	ck_assert(handover_name_ok("~!"));
	ck_assert(!handover_name_ok(""));
	ck_assert(!handover_name_ok("a:b"));
	ck_assert(!handover_name_ok("a b"));
	ck_assert(!handover_name_ok("a\x7f"));
	ck_assert(!handover_name_ok("\x01"));
	ck_assert(!handover_name_ok("\xc3\xa9"));
	memset(s, 'x', sizeof(s));
	s[HANDOVER_NAME_MAX - 1] = '\0';
	ck_assert(handover_name_ok(s));
	s[HANDOVER_NAME_MAX - 1] = 'x';
	s[HANDOVER_NAME_MAX] = '\0';
	ck_assert(!handover_name_ok(s));
}
END_TEST

Suite *
handover_suite(void)
{
	return add_cases(suite_create("handover"), UNIT_TIMEOUT, setup,
	    teardown,
	    "encode", TESTS(round_trip_every_type, header_and_byte_order,
		writer_refuses_bad_fields),
	    "open", TESTS(short_header_refused, wrong_magic_refused,
		other_version_refused, other_kind_refused,
		body_length_mismatch_refused, checksum_mismatch_refused,
		reserved_word_refused, every_bit_flip_refused),
	    "cursor", TESTS(read_past_end_latches, first_failure_reported,
		name_refuses_bad_bytes, name_length_limits, str_limits,
		count_over_max_refused, bool_of_two_refused,
		nested_claims_too_much, nested_bounds_the_record,
		trailing_bytes_refused),
	    "fds", TESTS(fds_dup_by_name, fds_duplicate_names,
		fds_release_closes_every_fd, memfd_read_back, read_fd_refusals,
		name_ok_rules),
	    NULL);
}
