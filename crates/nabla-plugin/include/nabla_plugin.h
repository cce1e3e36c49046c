/*
 * nabla plugin ABI, version 2 (version 1 had an `axpy` op, which no caller used).
 *
 * A plugin is a shared library that exports one function,
 *
 *     const nabla_backend_v2 *nabla_plugin_entry(uint32_t host_abi_version);
 *
 * returning a table of function pointers (or NULL if it cannot serve that ABI version). The
 * table, its context and every buffer belong to the plugin: the host frees buffers only by
 * calling `free_buffer` and ends the plugin by calling `destroy`; it never frees plugin memory
 * itself. See docs/plugins.md for the ownership, threading and versioning rules.
 *
 * Layout: matrices are row-major, one row per sample; a layer's weights are (out, in). Every
 * operation works on the first rows*cols (or len) elements of its buffers. Scalars travel as
 * double whatever the element type. Functions return NABLA_OK or an error code; after an error,
 * `last_error` gives a message for the user.
 */
#ifndef NABLA_PLUGIN_H
#define NABLA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NABLA_PLUGIN_ABI_VERSION 2u
#define NABLA_PLUGIN_ENTRY "nabla_plugin_entry"

/* Status codes. */
#define NABLA_OK 0
#define NABLA_ERROR 1

/* Element types. */
typedef enum nabla_dtype { NABLA_F32 = 0, NABLA_F64 = 1 } nabla_dtype;

/* Operations, for `supports`. */
typedef enum nabla_op {
    NABLA_OP_GEMM = 0,
    NABLA_OP_HADAMARD = 1,
    /* 2: retired (axpy, ABI version 1) */
    NABLA_OP_COPY = 3,
    NABLA_OP_BIAS_ADD = 4,
    NABLA_OP_ACTIVATE = 5,
    NABLA_OP_ACTIVATE_GRAD = 6,
    NABLA_OP_SUM_ROWS = 7,
    NABLA_OP_LOSS = 8,
    NABLA_OP_UPDATE = 9,
    NABLA_OP_DROPOUT_MASK = 10,
    NABLA_OP_COUNT = 11
} nabla_op;

/* The activation, loss and update-rule codes (NABLA_ACT_*, NABLA_LOSS_*, NABLA_RULE_*, each group
 * with its _COUNT): generated from nabla_core's Rust enums, never written by hand. Get this file
 * and nabla_plugin_codes.h with `nabla plugin-header DIR`. */
#include "nabla_plugin_codes.h"

/* Opaque, plugin-owned. */
typedef struct nabla_context nabla_context;
typedef struct nabla_buffer nabla_buffer;

/* One optimizer step: w <- rule(w, g, state); first w <- w (1 - lr decay), g <- g + l2 w. */
typedef struct nabla_update {
    uint32_t rule;
    uint32_t reserved;
    uint64_t t; /* 1-based step count */
    double lr;
    double l2;
    double decay;
    double p[4];
    double c1; /* Adam: 1 - beta1^t */
    double c2; /* Adam: 1 - beta2^t */
} nabla_update;

typedef int32_t nabla_status;

typedef struct nabla_backend_v2 {
    /* NABLA_PLUGIN_ABI_VERSION and sizeof(nabla_backend_v2), for the host to check. */
    uint32_t abi_version;
    uint32_t struct_size;
    /* A short name for messages, e.g. "example-c". */
    const char *name;
    /* The plugin's state, passed back to every function. */
    nabla_context *ctx;

    /* 1 if `op` works for `dtype` and `variant` (activation, loss or rule code; 0 otherwise). */
    int32_t (*supports)(nabla_context *ctx, uint32_t op, uint32_t dtype, uint32_t variant);
    /* The message of the last error on the calling thread (valid until the next call). */
    const char *(*last_error)(nabla_context *ctx);
    /* Frees the context. No call follows. */
    void (*destroy)(nabla_context *ctx);

    /* Buffers of `len` elements, zero-filled; freed with free_buffer. */
    nabla_status (*alloc)(nabla_context *ctx, uint32_t dtype, size_t len, nabla_buffer **out);
    void (*free_buffer)(nabla_context *ctx, nabla_buffer *buf);
    /* Copies `len` elements from the host into the buffer's first elements, or back. */
    nabla_status (*write)(nabla_context *ctx, uint32_t dtype, const void *host, size_t len, nabla_buffer *buf);
    nabla_status (*read)(nabla_context *ctx, uint32_t dtype, const nabla_buffer *buf, void *host, size_t len);
    /* Waits for queued work (a no-op for synchronous plugins). */
    nabla_status (*synchronize)(nabla_context *ctx);

    /* C <- alpha op(A) op(B) + beta C; op(A) is m x k, op(B) k x n; ta/tb 1 = transposed.
       With beta = 0 the old C is ignored (NaN there must not leak). */
    nabla_status (*gemm)(nabla_context *ctx, uint32_t dtype, uint32_t ta, uint32_t tb, size_t m, size_t n, size_t k,
                         double alpha, const nabla_buffer *a, const nabla_buffer *b, double beta, nabla_buffer *c);
    /* y <- x (.) y */
    nabla_status (*hadamard)(nabla_context *ctx, uint32_t dtype, size_t len, const nabla_buffer *x, nabla_buffer *y);
    /* dst <- src. Optional (NULL: the host uses the identity activation). */
    nabla_status (*copy)(nabla_context *ctx, uint32_t dtype, size_t len, const nabla_buffer *src, nabla_buffer *dst);
    /* z[r, c] <- z[r, c] + bias[c] */
    nabla_status (*bias_add)(nabla_context *ctx, uint32_t dtype, size_t rows, size_t cols, const nabla_buffer *bias, nabla_buffer *z);
    /* a <- act(z) (softmax row by row) */
    nabla_status (*activate)(nabla_context *ctx, uint32_t dtype, uint32_t act, double alpha, size_t rows, size_t cols,
                             const nabla_buffer *z, nabla_buffer *a);
    /* z <- z + bias, a <- act(z). Optional (NULL: the host calls bias_add then activate). */
    nabla_status (*bias_add_activate)(nabla_context *ctx, uint32_t dtype, uint32_t act, double alpha, size_t rows,
                                      size_t cols, const nabla_buffer *bias, nabla_buffer *z, nabla_buffer *a);
    /* delta <- delta (.) act'(z) (softmax: delta <- a (.) (delta - <delta, a>) per row) */
    nabla_status (*activate_grad)(nabla_context *ctx, uint32_t dtype, uint32_t act, double alpha, size_t rows, size_t cols,
                                  const nabla_buffer *z, const nabla_buffer *a, nabla_buffer *delta);
    /* out[c] <- alpha sum_r x[r, c] + beta out[c] (beta = 0 ignores the old out) */
    nabla_status (*sum_rows)(nabla_context *ctx, uint32_t dtype, size_t rows, size_t cols, double alpha,
                             const nabla_buffer *x, double beta, nabla_buffer *out);
    /* Batch loss: stats[0] <- mean loss, stats[1] <- correct predictions, grad <- output error
       (see nabla_core::loss for the formulas). */
    nabla_status (*loss)(nabla_context *ctx, uint32_t dtype, uint32_t loss, double param, size_t rows, size_t cols,
                         const nabla_buffer *out, const nabla_buffer *target, nabla_buffer *grad, nabla_buffer *stats);
    /* One optimizer step over `len` elements; s0/s1 are NULL when the rule keeps fewer state tensors. */
    nabla_status (*update)(nabla_context *ctx, uint32_t dtype, const nabla_update *u, size_t len, nabla_buffer *w,
                           const nabla_buffer *g, nabla_buffer *s0, nabla_buffer *s1);
    /* mask[i] <- keep(seed, i) ? 1/(1 - rate) : 0 with keep as in nabla_core::dropout. */
    nabla_status (*dropout_mask)(nabla_context *ctx, uint32_t dtype, size_t len, double rate, uint64_t seed, nabla_buffer *mask);
} nabla_backend_v2;

/* The entry point every plugin exports. */
typedef const nabla_backend_v2 *(*nabla_plugin_entry_fn)(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif

#endif /* NABLA_PLUGIN_H */
