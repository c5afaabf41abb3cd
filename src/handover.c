/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The handover blob's encoding (handover.h): a writer that grows a buffer
 * and a reader whose every field goes through one bounds check (take()).
 * It knows nothing of guests or rings; guest.c, vu_dev.c and main.c say
 * what goes in, in which order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "handover.h"

/*
 * CRC-32 by zlib: a well-kept implementation every Debian system already
 * has, rather than one of ours.  It catches bit flips and truncation in a
 * blob that crossed a file descriptor; it is not a defence against an
 * attacker, who would have to own the daemon's own fds already.
 */
static uint32_t
checksum(const uint8_t *p, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);

	while (len > 0) {
		uInt chunk = len > (1u << 30) ? 1u << 30 : (uInt)len;

		c = crc32(c, p, chunk);
		p += chunk;
		len -= chunk;
	}
	return (uint32_t)c;
}

static void
le_store(uint8_t *p, uint64_t v, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
le_load(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Room for n more bytes, or NULL (and the buffer failed). */
static uint8_t *
grow(struct handover_buf *b, size_t n)
{
	size_t cap;
	uint8_t *d;

	if (b->failed)
		return NULL;
	if (n > HANDOVER_MAX_BYTES || b->len > HANDOVER_MAX_BYTES - n) {
		b->failed = true;
		return NULL;
	}
	if (b->len + n > b->cap) {
		cap = b->cap == 0 ? 4096 : b->cap;
		while (cap < b->len + n)
			cap *= 2;
		if ((d = realloc(b->data, cap)) == NULL) {
			b->failed = true;
			return NULL;
		}
		b->data = d;
		b->cap = cap;
	}
	d = b->data + b->len;
	b->len += n;
	return d;
}

static void
put_le(struct handover_buf *b, uint64_t v, unsigned n)
{
	uint8_t *p = grow(b, n);

	if (p != NULL)
		le_store(p, v, n);
}

int
handover_begin(struct handover_buf *b, enum handover_kind kind)
{
	uint8_t *h;

	memset(b, 0, sizeof(*b));
	if ((h = grow(b, HANDOVER_HEADER_SIZE)) == NULL)
		return -1;
	memset(h, 0, HANDOVER_HEADER_SIZE);
	memcpy(h, HANDOVER_MAGIC, 8);
	le_store(h + 8, HANDOVER_VERSION, 4);
	le_store(h + 12, (uint32_t)kind, 4);
	return 0;
}

void
handover_put_u8(struct handover_buf *b, uint8_t v)
{
	put_le(b, v, 1);
}

void
handover_put_u16(struct handover_buf *b, uint16_t v)
{
	put_le(b, v, 2);
}

void
handover_put_u32(struct handover_buf *b, uint32_t v)
{
	put_le(b, v, 4);
}

void
handover_put_u64(struct handover_buf *b, uint64_t v)
{
	put_le(b, v, 8);
}

void
handover_put_name(struct handover_buf *b, const char *s)
{
	size_t n = strlen(s);
	uint8_t *p;

	if (n >= HANDOVER_NAME_MAX || (n > 0 && !handover_name_ok(s))) {
		b->failed = true;
		return;
	}
	put_le(b, n, 1);
	if (n > 0 && (p = grow(b, n)) != NULL)
		memcpy(p, s, n);
}

void
handover_put_str(struct handover_buf *b, const char *s)
{
	size_t n = strlen(s);
	uint8_t *p;

	if (n > 4095) {
		b->failed = true;
		return;
	}
	put_le(b, n, 2);
	if (n > 0 && (p = grow(b, n)) != NULL)
		memcpy(p, s, n);
}

size_t
handover_nest_begin(struct handover_buf *b)
{
	size_t mark = b->len;

	put_le(b, 0, 4);
	return mark;
}

void
handover_nest_end(struct handover_buf *b, size_t mark)
{
	size_t n;

	if (b->failed)
		return;
	n = b->len - mark - 4;
	if (n > UINT32_MAX) {
		b->failed = true;
		return;
	}
	le_store(b->data + mark, n, 4);
}

int
handover_finish(struct handover_buf *b)
{
	size_t body;

	if (b->failed || b->len < HANDOVER_HEADER_SIZE)
		return -1;
	body = b->len - HANDOVER_HEADER_SIZE;
	le_store(b->data + 16, body, 8);
	le_store(b->data + 24, checksum(b->data + HANDOVER_HEADER_SIZE, body),
	    4);
	return 0;
}

int
handover_memfd(const struct handover_buf *b, const char *name)
{
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = memfd_create(name, MFD_CLOEXEC)) < 0)
		return -1;
	while (off < b->len) {
		n = write(fd, b->data + off, b->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return fd;
}

uint8_t *
handover_read_fd(int fd, size_t *len)
{
	struct stat st;
	uint8_t *p;
	size_t off = 0;
	ssize_t n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > HANDOVER_MAX_BYTES)
		return NULL;
	*len = (size_t)st.st_size;
	if ((p = malloc(*len)) == NULL)
		return NULL;
	while (off < *len) {
		n = pread(fd, p + off, *len - off, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(p);
			return NULL;
		}
		off += (size_t)n;
	}
	return p;
}

void
handover_buf_free(struct handover_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

int
handover_open(struct handover_cursor *cur, const void *data, size_t len,
    enum handover_kind kind, char *err, size_t errlen)
{
	const uint8_t *h = data;
	uint64_t body;
	uint32_t v;

	memset(cur, 0, sizeof(*cur));
	cur->failed = true;
	if (len < HANDOVER_HEADER_SIZE || memcmp(h, HANDOVER_MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a vhost-device-rng state blob (%zu "
		    "bytes, no header)", len);
		return -1;
	}
	if ((v = (uint32_t)le_load(h + 8, 4)) != HANDOVER_VERSION) {
		snprintf(err, errlen, "state blob has format version %u; this "
		    "binary reads version %u only", v, HANDOVER_VERSION);
		return -1;
	}
	if ((v = (uint32_t)le_load(h + 12, 4)) != (uint32_t)kind) {
		snprintf(err, errlen, "state blob of kind %u where kind %u was "
		    "expected", v, (unsigned)kind);
		return -1;
	}
	body = le_load(h + 16, 8);
	if (body != len - HANDOVER_HEADER_SIZE) {
		snprintf(err, errlen, "state blob is truncated or has extra "
		    "bytes: header says %llu body bytes, %zu are there",
		    (unsigned long long)body, len - HANDOVER_HEADER_SIZE);
		return -1;
	}
	if ((v = (uint32_t)le_load(h + 28, 4)) != 0) {
		snprintf(err, errlen, "state blob header is corrupt: reserved "
		    "word 0x%08x is not zero", v);
		return -1;
	}
	if ((v = checksum(h + HANDOVER_HEADER_SIZE, (size_t)body)) !=
	    (uint32_t)le_load(h + 24, 4)) {
		snprintf(err, errlen, "state blob is corrupt: checksum 0x%08x, "
		    "header says 0x%08x", v, (unsigned)le_load(h + 24, 4));
		return -1;
	}
	cur->p = h + HANDOVER_HEADER_SIZE;
	cur->left = (size_t)body;
	cur->failed = false;
	return 0;
}

void
handover_fail(struct handover_cursor *cur, const char *why)
{
	if (!cur->failed)
		cur->why = why;
	cur->failed = true;
}

/* The one bounds check: n bytes of the body, or NULL (cursor failed). */
static const uint8_t *
take(struct handover_cursor *cur, size_t n)
{
	const uint8_t *p;

	if (cur->failed)
		return NULL;
	if (n > cur->left) {
		handover_fail(cur, "it ends in the middle of a field");
		return NULL;
	}
	p = cur->p;
	cur->p += n;
	cur->left -= n;
	return p;
}

static uint64_t
get_le(struct handover_cursor *cur, unsigned n)
{
	const uint8_t *p = take(cur, n);

	return p == NULL ? 0 : le_load(p, n);
}

uint8_t
handover_get_u8(struct handover_cursor *cur)
{
	return (uint8_t)get_le(cur, 1);
}

uint16_t
handover_get_u16(struct handover_cursor *cur)
{
	return (uint16_t)get_le(cur, 2);
}

uint32_t
handover_get_u32(struct handover_cursor *cur)
{
	return (uint32_t)get_le(cur, 4);
}

uint64_t
handover_get_u64(struct handover_cursor *cur)
{
	return get_le(cur, 8);
}

bool
handover_get_bool(struct handover_cursor *cur)
{
	uint8_t v = handover_get_u8(cur);

	if (v > 1)
		handover_fail(cur, "a flag is neither 0 nor 1");
	return v == 1;
}

uint32_t
handover_get_count(struct handover_cursor *cur, uint32_t max)
{
	uint32_t v = handover_get_u32(cur);

	if (v > max) {
		handover_fail(cur, "a count is out of range");
		return 0;
	}
	return v;
}

void
handover_get_name(struct handover_cursor *cur, char *out)
{
	uint8_t n = handover_get_u8(cur);
	const uint8_t *p;

	out[0] = '\0';
	if (n >= HANDOVER_NAME_MAX) {
		handover_fail(cur, "a descriptor name is too long");
		return;
	}
	if (n == 0 || (p = take(cur, n)) == NULL)
		return;
	memcpy(out, p, n);
	out[n] = '\0';
	/* A NUL inside would make a shorter name, not a refused one. */
	if (memchr(p, '\0', n) != NULL || !handover_name_ok(out)) {
		handover_fail(cur, "a descriptor name has bad characters");
		out[0] = '\0';
	}
}

void
handover_get_nested(struct handover_cursor *cur, struct handover_cursor *sub)
{
	uint32_t n = handover_get_u32(cur);
	const uint8_t *p = take(cur, n);

	memset(sub, 0, sizeof(*sub));
	if (p == NULL) {
		sub->failed = true;
		sub->why = cur->why;
		return;
	}
	sub->p = p;
	sub->left = n;
}

void
handover_get_str(struct handover_cursor *cur, char *out, size_t outlen)
{
	uint16_t n = handover_get_u16(cur);
	const uint8_t *p;

	out[0] = '\0';
	if ((size_t)n >= outlen) {
		handover_fail(cur, "a path is too long");
		return;
	}
	if (n == 0 || (p = take(cur, n)) == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		handover_fail(cur, "a path holds a NUL byte");
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

int
handover_close(struct handover_cursor *cur, char *err, size_t errlen)
{
	if (!cur->failed && cur->left != 0)
		handover_fail(cur, "it has bytes after its last field");
	if (!cur->failed)
		return 0;
	snprintf(err, errlen, "state blob refused: %s", cur->why != NULL ?
	    cur->why : "a field is malformed");
	return -1;
}

bool
handover_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= HANDOVER_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~' || *s == ':')
			return false;
	return true;
}

int
handover_fds_add(struct handover_fds *d, const char *name, int fd)
{
	struct handover_fd *v;
	unsigned cap;

	if (d->n == d->cap) {
		cap = d->cap == 0 ? 16 : d->cap * 2;
		if ((v = reallocarray(d->v, cap, sizeof(*v))) == NULL)
			return -1;
		d->v = v;
		d->cap = cap;
	}
	v = &d->v[d->n++];
	memset(v, 0, sizeof(*v));
	strlcpy(v->name, name, sizeof(v->name));
	v->fd = fd;
	return 0;
}

int
handover_fds_dup(struct handover_fds *d, const char *name)
{
	unsigned i;

	if (name[0] == '\0')
		return -1;
	for (i = 0; i < d->n; i++) {
		if (strcmp(d->v[i].name, name) != 0 || d->v[i].fd < 0)
			continue;
		d->v[i].used = true;
		return fcntl(d->v[i].fd, F_DUPFD_CLOEXEC, 3);
	}
	return -1;
}

void
handover_fds_release(struct handover_fds *d)
{
	unsigned i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].fd >= 0)
			close(d->v[i].fd);
	free(d->v);
	memset(d, 0, sizeof(*d));
}
