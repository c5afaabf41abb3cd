/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VRNG_HANDOVER_H
#define VRNG_HANDOVER_H

/*
 * The state blob a daemon hands to its successor: the next image after a
 * live upgrade (SIGUSR2, execve), or the next process after a crash
 * (systemd's file descriptor store).  Descriptors travel beside the blob;
 * the blob names each one (HANDOVER_NAME_MAX), and the successor finds it
 * by that name in a directory (struct handover_fds).
 *
 * Format, all integers little-endian:
 *
 *	header	magic "VRNGSTAT", u32 version, u32 kind, u64 body length,
 *		u32 CRC-32 of the body (zlib's crc32), u32 zero
 *	body	fields in the fixed order of its kind and version
 *
 * A successor refuses a blob whose magic, version, kind, length or
 * checksum is not what it writes itself, and reads the body through a
 * cursor that fails (and stays failed) instead of reading past the end:
 * a truncated, oversized or bit-flipped blob is refused with a sentence
 * saying why, never half used.  Values that mean something to the device
 * (ring sizes, addresses, memory regions) are checked afterwards by the
 * same functions that check them when a front-end sends them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HANDOVER_MAGIC		"VRNGSTAT"
#ifndef HANDOVER_VERSION
#define HANDOVER_VERSION	1	/* (the tests build another: -D) */
#endif
#define HANDOVER_HEADER_SIZE	32
/* Largest blob read: 1024 guests of 509 regions each fit in 64 MiB. */
#define HANDOVER_MAX_BYTES	(64u << 20)
/* fd names: sd_notify(3) FDNAME= allows 255 characters, no ':'. */
#define HANDOVER_NAME_MAX	64

enum handover_kind {
	HANDOVER_DAEMON = 1,	/* the whole daemon, for a live upgrade */
	HANDOVER_GUEST = 2,	/* one connection, for the fd store */
};

/* A blob being written; failed latches on allocation failure. */
struct handover_buf {
	uint8_t		*data;
	size_t		 len;
	size_t		 cap;
	bool		 failed;
};

/* A blob being read; failed latches on the first short or bad field. */
struct handover_cursor {
	const uint8_t	*p;
	size_t		 left;
	bool		 failed;
	const char	*why;		/* the first failure, static string */
};

/* Starts a blob of this kind: reserves the header. Returns 0 or -1. */
int	handover_begin(struct handover_buf *, enum handover_kind);
void	handover_put_u8(struct handover_buf *, uint8_t);
void	handover_put_u16(struct handover_buf *, uint16_t);
void	handover_put_u32(struct handover_buf *, uint32_t);
void	handover_put_u64(struct handover_buf *, uint64_t);
/* A string of at most HANDOVER_NAME_MAX - 1 bytes (longer: fails). */
void	handover_put_name(struct handover_buf *, const char *);
/* A path or other text of at most 4095 bytes (u16 length first). */
void	handover_put_str(struct handover_buf *, const char *);
/*
 * A nested record: handover_nest_begin returns a mark for a u32 length,
 * handover_nest_end fills it in.  A reader can then skip a record whose
 * contents it could not use (handover_get_nested).
 */
size_t	handover_nest_begin(struct handover_buf *);
void	handover_nest_end(struct handover_buf *, size_t mark);
/*
 * Fills in the header's length and checksum.  Returns 0, or -1 if any
 * put failed (the blob is then unusable).
 */
int	handover_finish(struct handover_buf *);
void	handover_buf_free(struct handover_buf *);

/*
 * A finished blob in a new memfd (close-on-exec) called name, or -1 with
 * errno: how a blob travels, to a successor image or to the fd store.
 */
int	handover_memfd(const struct handover_buf *, const char *name);
/*
 * The whole content of a blob's fd (a regular file of 1 to
 * HANDOVER_MAX_BYTES bytes), malloc'ed, with its length in *len; NULL if
 * it is anything else or cannot be read.
 */
uint8_t	*handover_read_fd(int fd, size_t *len);

/*
 * Checks the header of len bytes at data (magic, version, kind, body
 * length equal to what is there, checksum) and points *cur at the body.
 * Returns 0, or -1 with a sentence in err.
 */
int	handover_open(struct handover_cursor *, const void *data, size_t len,
	    enum handover_kind, char *err, size_t errlen);
uint8_t	 handover_get_u8(struct handover_cursor *);
uint16_t handover_get_u16(struct handover_cursor *);
uint32_t handover_get_u32(struct handover_cursor *);
uint64_t handover_get_u64(struct handover_cursor *);
/* A boolean: 0 or 1, anything else fails the cursor. */
bool	handover_get_bool(struct handover_cursor *);
/* A u32 that must be at most max (else the cursor fails, returns 0). */
uint32_t handover_get_count(struct handover_cursor *, uint32_t max);
/* A name into out[HANDOVER_NAME_MAX]: printable ASCII without ':'. */
void	handover_get_name(struct handover_cursor *, char *out);
/*
 * A nested record: *sub reads exactly its bytes and the cursor moves past
 * them whatever *sub does.  A short record fails both.
 */
void	handover_get_nested(struct handover_cursor *,
	    struct handover_cursor *sub);
/* Text into out[outlen]: fails if it does not fit or holds a NUL. */
void	handover_get_str(struct handover_cursor *, char *out, size_t outlen);
/* Marks the cursor failed with a reason (for values checked by callers). */
void	handover_fail(struct handover_cursor *, const char *why);
/* 0 if the whole body was read without failure, else -1 with err. */
int	handover_close(struct handover_cursor *, char *err, size_t errlen);

/*
 * The descriptors that came with a blob, by name: from the blob itself
 * (live upgrade: the fd numbers survive execve) or from LISTEN_FDNAMES
 * (systemd's fd store).  Users get duplicates, so that one fd may serve
 * several regions of one file; the originals are closed at the end.
 */
struct handover_fd {
	char	 name[HANDOVER_NAME_MAX];
	int	 fd;
	bool	 used;
};

struct handover_fds {
	struct handover_fd	*v;
	unsigned		 n;
	unsigned		 cap;
};

/* Adds name -> fd (the directory owns fd).  0 or -1 (ENOMEM). */
int	handover_fds_add(struct handover_fds *, const char *name, int fd);
/*
 * A close-on-exec duplicate of the first fd called name (marked used), or
 * -1 if there is none ("" gives -1) or dup fails.
 */
int	handover_fds_dup(struct handover_fds *, const char *name);
/* Closes every fd of the directory and frees it. */
void	handover_fds_release(struct handover_fds *);

/* Whether s is a valid fd name (printable ASCII, no ':', short enough). */
bool	handover_name_ok(const char *s);

#endif
