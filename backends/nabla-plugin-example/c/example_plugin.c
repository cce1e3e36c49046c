/*
 * An example nabla plugin written in C: a complete CPU backend (plain loops, float and
 * double) behind the ABI of nabla_plugin.h. It proves the ABI is really C.
 *
 *     nabla plugin-header include      # nabla_plugin.h and the generated nabla_plugin_codes.h
 *     cc -O2 -shared -fPIC -I include example_plugin.c -o libexample_c.so -lm
 *     nabla train --backend plugin:./libexample_c.so
 *
 * The tests also build it with -DNABLA_TEST_* flags into deliberately broken plugins, to check
 * that the host turns each misbehaviour into an error.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla_plugin.h"

/* One per load: the table lives in its context, so two loads never share state. */
struct nabla_context {
    char error[512];
    nabla_backend_v2 table;
};

struct nabla_buffer {
    uint32_t dtype;
    size_t len;
    void *data;
};

static nabla_status fail(nabla_context *ctx, const char *op, const char *why) {
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", op, why);
    return NABLA_ERROR;
}

/* Checks a buffer's element type and that it holds `need` elements. */
static int bad(nabla_context *ctx, const char *op, const nabla_buffer *b, uint32_t dtype, size_t need) {
    if (!b) return fail(ctx, op, "NULL buffer"), 1;
    if (b->dtype != dtype) return fail(ctx, op, "buffer of another element type"), 1;
    if (b->len < need) return fail(ctx, op, "buffer too short"), 1;
    return 0;
}

/* SplitMix64's finaliser, as nabla_core::dropout::mix64. */
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* Built with -DNABLA_TEST_WRONG_SIGMOID_GRAD, the sigmoid's derivative is off by 0.01: the plugin
 * the conformance kit's own test must fail (on that row only). */
#ifdef NABLA_TEST_WRONG_SIGMOID_GRAD
#define SIGMOID_GRAD_ERROR 0.01
#else
#define SIGMOID_GRAD_ERROR 0
#endif

/* Every op, for one element type T with math-function suffix S (f for float, none for double). */
#define DEFINE_OPS(T, N, S)                                                                         \
    static T sigmoid_##N(T z) {                                                                     \
        if (z >= 0) return (T)1 / ((T)1 + exp##S(-z));                                              \
        T e = exp##S(z);                                                                            \
        return e / ((T)1 + e);                                                                      \
    }                                                                                               \
    static T act_##N(uint32_t f, T alpha, T z) {                                                    \
        switch (f) {                                                                                \
        case NABLA_ACT_IDENTITY: return z;                                                          \
        case NABLA_ACT_SIGMOID: return sigmoid_##N(z);                                              \
        case NABLA_ACT_TANH: return tanh##S(z);                                                     \
        case NABLA_ACT_RELU: return z < 0 ? (T)0 : z;                                               \
        case NABLA_ACT_LEAKY_RELU: return z < 0 ? alpha * z : z;                                    \
        case NABLA_ACT_ELU: return z < 0 ? alpha * expm1##S(z) : z;                                 \
        case NABLA_ACT_GELU: {                                                                      \
            T inner = (T)0.7978845608028654 * (z + (T)0.044715 * z * z * z);                        \
            return (T)0.5 * z * ((T)1 + tanh##S(inner));                                           \
        }                                                                                           \
        case NABLA_ACT_SOFTPLUS: return (z > 0 ? z : (T)0) + log1p##S(exp##S(-fabs##S(z)));         \
        case NABLA_ACT_SOFTSIGN: return z / ((T)1 + fabs##S(z));                                    \
        case NABLA_ACT_GELU_ERF: return (T)0.5 * z * ((T)1 + erf##S(z * (T)0.7071067811865476));    \
        case NABLA_ACT_SILU: return z * sigmoid_##N(z);                                             \
        case NABLA_ACT_MISH: return z * tanh##S((z > 0 ? z : (T)0) + log1p##S(exp##S(-fabs##S(z))));\
        default: return (T)NAN; /* unreachable: ops refuse codes known_activation() rejects */      \
        }                                                                                           \
    }                                                                                               \
    static T dact_##N(uint32_t f, T alpha, T z, T a) {                                              \
        switch (f) {                                                                                \
        case NABLA_ACT_IDENTITY: return (T)1;                                                       \
        case NABLA_ACT_SIGMOID: return a * ((T)1 - a) + (T)SIGMOID_GRAD_ERROR;                      \
        case NABLA_ACT_TANH: return (T)1 - a * a;                                                   \
        case NABLA_ACT_RELU: return z > 0 ? (T)1 : (T)0;                                            \
        case NABLA_ACT_LEAKY_RELU: return z > 0 ? (T)1 : alpha;                                     \
        case NABLA_ACT_ELU: return z > 0 ? (T)1 : alpha * exp##S(z);                                \
        case NABLA_ACT_GELU: {                                                                      \
            T c = (T)0.7978845608028654, k = (T)0.044715;                                           \
            T t = tanh##S(c * (z + k * z * z * z));                                                 \
            return (T)0.5 * ((T)1 + t) + (T)0.5 * z * ((T)1 - t * t) * c * ((T)1 + (T)3 * k * z * z); \
        }                                                                                           \
        case NABLA_ACT_SOFTPLUS: return sigmoid_##N(z);                                             \
        case NABLA_ACT_SOFTSIGN: { T d = (T)1 + fabs##S(z); return (T)1 / (d * d); }                \
        case NABLA_ACT_GELU_ERF: {                                                                  \
            T cdf = (T)0.5 * ((T)1 + erf##S(z * (T)0.7071067811865476));                            \
            return cdf + z * (T)0.3989422804014327 * exp##S((T)-0.5 * z * z);                       \
        }                                                                                           \
        case NABLA_ACT_SILU: { T s = sigmoid_##N(z); return s * ((T)1 + z * ((T)1 - s)); }          \
        case NABLA_ACT_MISH: {                                                                      \
            T t = tanh##S((z > 0 ? z : (T)0) + log1p##S(exp##S(-fabs##S(z))));                      \
            return t + z * ((T)1 - t * t) * sigmoid_##N(z);                                         \
        }                                                                                           \
        default: return (T)NAN;                                                                     \
        }                                                                                           \
    }                                                                                               \
    static void gemm_##N(uint32_t ta, uint32_t tb, size_t m, size_t n, size_t k, T alpha,          \
                         const T *a, const T *b, T beta, T *c) {                                    \
        for (size_t i = 0; i < m; i++)                                                              \
            for (size_t j = 0; j < n; j++) {                                                        \
                T dot = 0;                                                                          \
                for (size_t p = 0; p < k; p++)                                                      \
                    dot += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]); \
                c[i * n + j] = alpha * dot + (beta == 0 ? (T)0 : beta * c[i * n + j]);              \
            }                                                                                       \
    }                                                                                               \
    static void softmax_row_##N(const T *z, T *a, size_t cols) {                                    \
        T m = z[0];                                                                                 \
        for (size_t j = 1; j < cols; j++) m = z[j] > m ? z[j] : m;                                  \
        T s = 0;                                                                                    \
        for (size_t j = 0; j < cols; j++) { a[j] = exp##S(z[j] - m); s += a[j]; }                   \
        for (size_t j = 0; j < cols; j++) a[j] *= (T)1 / s;                                         \
    }                                                                                               \
    static void activate_##N(uint32_t f, T alpha, size_t rows, size_t cols, const T *z, T *a) {    \
        if (f == NABLA_ACT_SOFTMAX) {                                                               \
            for (size_t r = 0; r < rows; r++) softmax_row_##N(z + r * cols, a + r * cols, cols);    \
        } else {                                                                                    \
            for (size_t i = 0; i < rows * cols; i++) a[i] = act_##N(f, alpha, z[i]);                \
        }                                                                                           \
    }                                                                                               \
    static void activate_grad_##N(uint32_t f, T alpha, size_t rows, size_t cols, const T *z,       \
                                  const T *a, T *d) {                                               \
        if (f == NABLA_ACT_SOFTMAX) {                                                               \
            for (size_t r = 0; r < rows; r++) {                                                     \
                const T *ar = a + r * cols;                                                         \
                T *dr = d + r * cols, dot = 0;                                                      \
                for (size_t j = 0; j < cols; j++) dot += ar[j] * dr[j];                             \
                for (size_t j = 0; j < cols; j++) dr[j] = ar[j] * (dr[j] - dot);                    \
            }                                                                                       \
        } else {                                                                                    \
            for (size_t i = 0; i < rows * cols; i++) d[i] = d[i] * dact_##N(f, alpha, z[i], a[i]);  \
        }                                                                                           \
    }                                                                                               \
    static void loss_##N(uint32_t l, T param, size_t rows, size_t cols, const T *o, const T *y,    \
                         T *g, T *stats) {                                                          \
        size_t norm = l == NABLA_LOSS_SOFTMAX_CE ? rows : rows * cols;                              \
        T scale = (T)1 / (T)(norm ? norm : 1), total = 0, correct = 0;                              \
        for (size_t r = 0; r < rows; r++) {                                                         \
            const T *orow = o + r * cols, *yrow = y + r * cols;                                     \
            T *grow = g + r * cols;                                                                 \
            if (l == NABLA_LOSS_SOFTMAX_CE) {                                                       \
                T m = orow[0], ysum = 0, s = 0;                                                     \
                for (size_t j = 0; j < cols; j++) { m = orow[j] > m ? orow[j] : m; ysum += yrow[j]; } \
                for (size_t j = 0; j < cols; j++) s += exp##S(orow[j] - m);                         \
                T lse = m + log##S(s);                                                              \
                for (size_t j = 0; j < cols; j++) {                                                 \
                    total += yrow[j] * (lse - orow[j]);                                             \
                    grow[j] = (exp##S(orow[j] - lse) * ysum - yrow[j]) * scale;                     \
                }                                                                                   \
            } else if (l == NABLA_LOSS_BCE) {                                                       \
                for (size_t j = 0; j < cols; j++) {                                                 \
                    T z = orow[j], t = yrow[j];                                                     \
                    total += (z > 0 ? z : (T)0) - z * t + log1p##S(exp##S(-fabs##S(z)));            \
                    grow[j] = (sigmoid_##N(z) - t) * scale;                                         \
                    correct += ((z > 0) == (t > (T)0.5)) ? 1 : 0;                                   \
                }                                                                                   \
            } else {                                                                                \
                for (size_t j = 0; j < cols; j++) {                                                 \
                    T d = orow[j] - yrow[j], ad = fabs##S(d);                                       \
                    if (l == NABLA_LOSS_MSE) { total += d * d; grow[j] = (d + d) * scale; }         \
                    else if (l == NABLA_LOSS_MAE) { total += ad; grow[j] = d > 0 ? scale : (d < 0 ? -scale : (T)0); } \
                    else if (l == NABLA_LOSS_HUBER) {                                               \
                        total += ad <= param ? (T)0.5 * d * d : param * (ad - (T)0.5 * param);      \
                        grow[j] = (d < -param ? -param : (d > param ? param : d)) * scale;          \
                    } else { total = (T)NAN; grow[j] = (T)NAN; }                                    \
                }                                                                                   \
            }                                                                                       \
            if (l != NABLA_LOSS_BCE && cols > 0) { /* no columns: nothing predicted, none correct */ \
                if (cols == 1) {                                                                    \
                    correct += ((orow[0] > (T)0.5) == (yrow[0] > (T)0.5)) ? 1 : 0;                  \
                } else {                                                                            \
                    size_t bo = 0, by = 0;                                                          \
                    for (size_t j = 1; j < cols; j++) {                                             \
                        if (orow[j] > orow[bo]) bo = j;                                             \
                        if (yrow[j] > yrow[by]) by = j;                                             \
                    }                                                                               \
                    correct += bo == by ? 1 : 0;                                                    \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
        stats[0] = total * scale;                                                                   \
        stats[1] = correct;                                                                         \
    }                                                                                               \
    static void update_##N(const nabla_update *u, size_t len, T *w, const T *g, T *s0, T *s1) {    \
        T lr = (T)u->lr, l2 = (T)u->l2, shrink = (T)1 - (T)(u->lr * u->decay);                      \
        T p0 = (T)u->p[0], p1 = (T)u->p[1], p2 = (T)u->p[2], p3 = (T)u->p[3];                       \
        for (size_t i = 0; i < len; i++) {                                                          \
            T wi = w[i];                                                                            \
            if (u->decay != 0) wi = wi * shrink;                                                    \
            T gi = u->l2 != 0 ? g[i] + l2 * wi : g[i];                                              \
            switch (u->rule) {                                                                      \
            case NABLA_RULE_SGD: wi = wi - lr * gi; break;                                          \
            case NABLA_RULE_MOMENTUM:                                                               \
            case NABLA_RULE_NESTEROV: {                                                             \
                T v = p0 * s0[i] + gi;                                                              \
                s0[i] = v;                                                                          \
                wi = wi - lr * (u->rule == NABLA_RULE_NESTEROV ? gi + p0 * v : v);                  \
                break;                                                                              \
            }                                                                                       \
            case NABLA_RULE_ADAGRAD: s0[i] = s0[i] + gi * gi; wi = wi - lr * gi / (sqrt##S(s0[i]) + p0); break; \
            case NABLA_RULE_RMSPROP:                                                                \
                s0[i] = p0 * s0[i] + ((T)1 - p0) * gi * gi;                                         \
                wi = wi - lr * gi / (sqrt##S(s0[i]) + p1);                                          \
                break;                                                                              \
            case NABLA_RULE_ADAM: {                                                                 \
                s0[i] = p0 * s0[i] + ((T)1 - p0) * gi;                                              \
                s1[i] = p1 * s1[i] + ((T)1 - p1) * gi * gi;                                         \
                T step = (T)(u->lr / u->c1), c2 = (T)u->c2;                                         \
                wi = wi - step * s0[i] / (sqrt##S(s1[i] / c2) + p2);                                \
                break;                                                                              \
            }                                                                                       \
            case NABLA_RULE_RPROP: {                                                                \
                T trend = s0[i] * gi;                                                               \
                if (trend < 0) {                                                                    \
                    T s = s1[i] * p0;                                                               \
                    s1[i] = s > p2 ? s : p2;                                                        \
                    s0[i] = 0;                                                                      \
                } else {                                                                            \
                    if (trend > 0) { T s = s1[i] * p1; s1[i] = s < p3 ? s : p3; }                   \
                    T sg = gi > 0 ? (T)1 : (gi < 0 ? (T)-1 : (T)0);                                 \
                    wi = wi - sg * s1[i];                                                           \
                    s0[i] = gi;                                                                     \
                }                                                                                   \
                break;                                                                              \
            }                                                                                       \
            default: wi = (T)NAN;                                                                   \
            }                                                                                       \
            w[i] = wi;                                                                              \
        }                                                                                           \
    }

DEFINE_OPS(float, f32, f)
DEFINE_OPS(double, f64, )

#define DATA(T, b) ((T *)(b)->data)
#define CDATA(T, b) ((const T *)(b)->data)

/* Calls the f32 or f64 version of an op. */
#define DISPATCH(dtype, call32, call64)                                                             \
    do {                                                                                            \
        if ((dtype) == NABLA_F32) { call32; }                                                       \
        else { call64; }                                                                            \
    } while (0)

/* The codes this plugin implements, named one by one: a code of a newer header that is missing
   here is reported unsupported by p_supports and refused by the op, never computed as another. */
static int known_activation(uint32_t f) {
    switch (f) {
    case NABLA_ACT_IDENTITY: case NABLA_ACT_SIGMOID: case NABLA_ACT_TANH: case NABLA_ACT_RELU:
    case NABLA_ACT_LEAKY_RELU: case NABLA_ACT_ELU: case NABLA_ACT_SOFTPLUS:
    case NABLA_ACT_SOFTSIGN: case NABLA_ACT_SOFTMAX: case NABLA_ACT_GELU_ERF: case NABLA_ACT_SILU:
    case NABLA_ACT_MISH: return 1;
#ifndef NABLA_TEST_UNSUPPORTED
    case NABLA_ACT_GELU: return 1;
#endif
    default: return 0;
    }
}

static int known_loss(uint32_t l) {
    switch (l) {
    case NABLA_LOSS_MSE: case NABLA_LOSS_MAE: case NABLA_LOSS_HUBER: case NABLA_LOSS_BCE:
    case NABLA_LOSS_SOFTMAX_CE: return 1;
    default: return 0;
    }
}

static int known_rule(uint32_t r) {
    switch (r) {
    case NABLA_RULE_SGD: case NABLA_RULE_MOMENTUM: case NABLA_RULE_NESTEROV: case NABLA_RULE_ADAGRAD:
    case NABLA_RULE_RMSPROP: case NABLA_RULE_ADAM: case NABLA_RULE_RPROP: return 1;
    default: return 0;
    }
}

static int32_t p_supports(nabla_context *ctx, uint32_t op, uint32_t dtype, uint32_t variant) {
    (void)ctx;
    if (dtype > NABLA_F64 || op >= NABLA_OP_COUNT) return 0;
    switch (op) {
    case NABLA_OP_ACTIVATE:
    case NABLA_OP_ACTIVATE_GRAD: return known_activation(variant);
    case NABLA_OP_LOSS: return known_loss(variant);
    case NABLA_OP_UPDATE: return known_rule(variant);
    default: return variant == 0;
    }
}

static const char *p_last_error(nabla_context *ctx) { return ctx->error; }

/* Contexts made by the entry and not yet destroyed (read by the host's tests: a refused plugin
   must still get its context back). */
static int live_contexts = 0;

int nabla_example_live_contexts(void) { return live_contexts; }

static void p_destroy(nabla_context *ctx) {
    free(ctx);
    live_contexts--;
}

static nabla_status p_alloc(nabla_context *ctx, uint32_t dtype, size_t len, nabla_buffer **out) {
    if (dtype > NABLA_F64) return fail(ctx, "alloc", "unknown element type");
    nabla_buffer *b = malloc(sizeof *b);
    size_t size = dtype == NABLA_F32 ? sizeof(float) : sizeof(double);
    void *data = calloc(len ? len : 1, size);
    if (!b || !data) {
        free(b);
        free(data);
        return fail(ctx, "alloc", "out of memory");
    }
    b->dtype = dtype;
    b->len = len;
    b->data = data;
    *out = b;
    return NABLA_OK;
}

static void p_free(nabla_context *ctx, nabla_buffer *b) {
    (void)ctx;
    if (b) {
        free(b->data);
        free(b);
    }
}

static nabla_status p_write(nabla_context *ctx, uint32_t dtype, const void *host, size_t len, nabla_buffer *b) {
    if (bad(ctx, "write", b, dtype, len)) return NABLA_ERROR;
    memcpy(b->data, host, len * (dtype == NABLA_F32 ? sizeof(float) : sizeof(double)));
    return NABLA_OK;
}

static nabla_status p_read(nabla_context *ctx, uint32_t dtype, const nabla_buffer *b, void *host, size_t len) {
    if (bad(ctx, "read", b, dtype, len)) return NABLA_ERROR;
    memcpy(host, b->data, len * (dtype == NABLA_F32 ? sizeof(float) : sizeof(double)));
    return NABLA_OK;
}

static nabla_status p_synchronize(nabla_context *ctx) {
    (void)ctx;
    return NABLA_OK;
}

static nabla_status p_gemm(nabla_context *ctx, uint32_t dtype, uint32_t ta, uint32_t tb, size_t m, size_t n, size_t k,
                           double alpha, const nabla_buffer *a, const nabla_buffer *b, double beta, nabla_buffer *c) {
#ifdef NABLA_TEST_FAILING
    (void)dtype, (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)b, (void)beta, (void)c;
    (void)gemm_f32, (void)gemm_f64;
    return fail(ctx, "gemm", "simulated device failure");
#else
    if (bad(ctx, "gemm", a, dtype, m * k) || bad(ctx, "gemm", b, dtype, k * n) || bad(ctx, "gemm", c, dtype, m * n))
        return NABLA_ERROR;
    DISPATCH(dtype, gemm_f32(ta, tb, m, n, k, (float)alpha, CDATA(float, a), CDATA(float, b), (float)beta, DATA(float, c)),
             gemm_f64(ta, tb, m, n, k, alpha, CDATA(double, a), CDATA(double, b), beta, DATA(double, c)));
    return NABLA_OK;
#endif
}

static nabla_status p_hadamard(nabla_context *ctx, uint32_t dtype, size_t len, const nabla_buffer *x, nabla_buffer *y) {
    if (bad(ctx, "hadamard", x, dtype, len) || bad(ctx, "hadamard", y, dtype, len)) return NABLA_ERROR;
    DISPATCH(dtype, for (size_t i = 0; i < len; i++) DATA(float, y)[i] *= CDATA(float, x)[i],
             for (size_t i = 0; i < len; i++) DATA(double, y)[i] *= CDATA(double, x)[i]);
    return NABLA_OK;
}

static nabla_status p_copy(nabla_context *ctx, uint32_t dtype, size_t len, const nabla_buffer *x, nabla_buffer *y) {
    if (bad(ctx, "copy", x, dtype, len) || bad(ctx, "copy", y, dtype, len)) return NABLA_ERROR;
    memcpy(y->data, x->data, len * (dtype == NABLA_F32 ? sizeof(float) : sizeof(double)));
    return NABLA_OK;
}

static nabla_status p_bias_add(nabla_context *ctx, uint32_t dtype, size_t rows, size_t cols, const nabla_buffer *bias, nabla_buffer *z) {
    if (bad(ctx, "bias_add", bias, dtype, cols) || bad(ctx, "bias_add", z, dtype, rows * cols)) return NABLA_ERROR;
    DISPATCH(dtype, for (size_t i = 0; i < rows * cols; i++) DATA(float, z)[i] += CDATA(float, bias)[i % cols],
             for (size_t i = 0; i < rows * cols; i++) DATA(double, z)[i] += CDATA(double, bias)[i % cols]);
    return NABLA_OK;
}

static nabla_status p_activate(nabla_context *ctx, uint32_t dtype, uint32_t act, double alpha, size_t rows, size_t cols,
                               const nabla_buffer *z, nabla_buffer *a) {
    if (!known_activation(act)) return fail(ctx, "activate", "unknown activation code");
    if (bad(ctx, "activate", z, dtype, rows * cols) || bad(ctx, "activate", a, dtype, rows * cols)) return NABLA_ERROR;
    DISPATCH(dtype, activate_f32(act, (float)alpha, rows, cols, CDATA(float, z), DATA(float, a)),
             activate_f64(act, alpha, rows, cols, CDATA(double, z), DATA(double, a)));
    return NABLA_OK;
}

static nabla_status p_activate_grad(nabla_context *ctx, uint32_t dtype, uint32_t act, double alpha, size_t rows, size_t cols,
                                    const nabla_buffer *z, const nabla_buffer *a, nabla_buffer *d) {
    if (!known_activation(act)) return fail(ctx, "activate_grad", "unknown activation code");
    size_t n = rows * cols;
    if (bad(ctx, "activate_grad", z, dtype, n) || bad(ctx, "activate_grad", a, dtype, n) || bad(ctx, "activate_grad", d, dtype, n))
        return NABLA_ERROR;
    DISPATCH(dtype, activate_grad_f32(act, (float)alpha, rows, cols, CDATA(float, z), CDATA(float, a), DATA(float, d)),
             activate_grad_f64(act, alpha, rows, cols, CDATA(double, z), CDATA(double, a), DATA(double, d)));
    return NABLA_OK;
}

static nabla_status p_sum_rows(nabla_context *ctx, uint32_t dtype, size_t rows, size_t cols, double alpha, const nabla_buffer *x,
                               double beta, nabla_buffer *out) {
    if (bad(ctx, "sum_rows", x, dtype, rows * cols) || bad(ctx, "sum_rows", out, dtype, cols)) return NABLA_ERROR;
    for (size_t c = 0; c < cols; c++) {
        double s = 0;
        if (dtype == NABLA_F32) {
            float sf = 0;
            for (size_t r = 0; r < rows; r++) sf += CDATA(float, x)[r * cols + c];
            float *o = &DATA(float, out)[c];
            *o = (float)alpha * sf + (beta == 0 ? 0.0f : (float)beta * *o);
        } else {
            for (size_t r = 0; r < rows; r++) s += CDATA(double, x)[r * cols + c];
            double *o = &DATA(double, out)[c];
            *o = alpha * s + (beta == 0 ? 0.0 : beta * *o);
        }
    }
    return NABLA_OK;
}

static nabla_status p_loss(nabla_context *ctx, uint32_t dtype, uint32_t loss, double param, size_t rows, size_t cols,
                           const nabla_buffer *o, const nabla_buffer *y, nabla_buffer *g, nabla_buffer *stats) {
    if (!known_loss(loss)) return fail(ctx, "loss", "unknown loss code");
    size_t n = rows * cols;
    if (bad(ctx, "loss", o, dtype, n) || bad(ctx, "loss", y, dtype, n) || bad(ctx, "loss", g, dtype, n) ||
        bad(ctx, "loss", stats, dtype, 2))
        return NABLA_ERROR;
    DISPATCH(dtype, loss_f32(loss, (float)param, rows, cols, CDATA(float, o), CDATA(float, y), DATA(float, g), DATA(float, stats)),
             loss_f64(loss, param, rows, cols, CDATA(double, o), CDATA(double, y), DATA(double, g), DATA(double, stats)));
    return NABLA_OK;
}

static nabla_status p_update(nabla_context *ctx, uint32_t dtype, const nabla_update *u, size_t len, nabla_buffer *w,
                             const nabla_buffer *g, nabla_buffer *s0, nabla_buffer *s1) {
    if (!u || !known_rule(u->rule)) return fail(ctx, "update", "unknown update rule code");
    int states = u->rule == NABLA_RULE_SGD ? 0 : (u->rule == NABLA_RULE_ADAM || u->rule == NABLA_RULE_RPROP ? 2 : 1);
    if (bad(ctx, "update", w, dtype, len) || bad(ctx, "update", g, dtype, len) ||
        (states > 0 && bad(ctx, "update", s0, dtype, len)) || (states > 1 && bad(ctx, "update", s1, dtype, len)))
        return NABLA_ERROR;
    DISPATCH(dtype,
             update_f32(u, len, DATA(float, w), CDATA(float, g), s0 ? DATA(float, s0) : NULL, s1 ? DATA(float, s1) : NULL),
             update_f64(u, len, DATA(double, w), CDATA(double, g), s0 ? DATA(double, s0) : NULL, s1 ? DATA(double, s1) : NULL));
    return NABLA_OK;
}

static nabla_status p_dropout_mask(nabla_context *ctx, uint32_t dtype, size_t len, double rate, uint64_t seed, nabla_buffer *mask) {
    if (bad(ctx, "dropout_mask", mask, dtype, len)) return NABLA_ERROR;
    double r = rate < 0 ? 0 : (rate > 1 ? 1 : rate);
    uint64_t threshold = (uint64_t)(r * 9007199254740992.0); /* 2^53 */
    double kept = 1.0 / (1.0 - rate);
    for (size_t i = 0; i < len; i++) {
        int keep = (mix64(seed ^ mix64((uint64_t)i)) >> 11) >= threshold;
        if (dtype == NABLA_F32) DATA(float, mask)[i] = keep ? (float)kept : 0.0f;
        else DATA(double, mask)[i] = keep ? kept : 0.0;
    }
    return NABLA_OK;
}

static const nabla_backend_v2 TEMPLATE = {
    .abi_version = NABLA_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(nabla_backend_v2),
    .name = "example-c",
    .ctx = NULL,
    .supports = p_supports,
    .last_error = p_last_error,
    .destroy = p_destroy,
    .alloc = p_alloc,
    .free_buffer = p_free,
    .write = p_write,
    .read = p_read,
    .synchronize = p_synchronize,
    .gemm = p_gemm,
    .hadamard = p_hadamard,
    .copy = p_copy,
    .bias_add = p_bias_add,
    .activate = p_activate,
    .bias_add_activate = NULL, /* optional: the host composes bias_add and activate */
    .activate_grad = p_activate_grad,
    .sum_rows = p_sum_rows,
    .loss = p_loss,
    .update = p_update,
    .dropout_mask = p_dropout_mask,
};

#ifdef NABLA_TEST_NO_ENTRY
#define ENTRY_NAME not_the_entry
#else
#define ENTRY_NAME nabla_plugin_entry
#endif

const nabla_backend_v2 *ENTRY_NAME(uint32_t host_abi_version) {
    if (host_abi_version != NABLA_PLUGIN_ABI_VERSION) return NULL;
#ifdef NABLA_TEST_NULL_TABLE
    return NULL;
#endif
    nabla_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    live_contexts++;
    ctx->table = TEMPLATE;
    ctx->table.ctx = ctx;
#ifdef NABLA_TEST_BAD_VERSION
    ctx->table.abi_version = 99;
#endif
#ifdef NABLA_TEST_SMALL_STRUCT
    ctx->table.struct_size = 16;
#endif
#ifdef NABLA_TEST_NULL_FN
    ctx->table.gemm = NULL;
#endif
    return &ctx->table;
}

/* The offset of every table field, for the host's header-sync test. */
size_t nabla_example_table_layout(size_t *out, size_t n) {
    size_t offsets[] = {
        offsetof(nabla_backend_v2, abi_version),   offsetof(nabla_backend_v2, struct_size),
        offsetof(nabla_backend_v2, name),          offsetof(nabla_backend_v2, ctx),
        offsetof(nabla_backend_v2, supports),      offsetof(nabla_backend_v2, last_error),
        offsetof(nabla_backend_v2, destroy),       offsetof(nabla_backend_v2, alloc),
        offsetof(nabla_backend_v2, free_buffer),   offsetof(nabla_backend_v2, write),
        offsetof(nabla_backend_v2, read),          offsetof(nabla_backend_v2, synchronize),
        offsetof(nabla_backend_v2, gemm),          offsetof(nabla_backend_v2, hadamard),
        offsetof(nabla_backend_v2, copy),          offsetof(nabla_backend_v2, bias_add),
        offsetof(nabla_backend_v2, activate),      offsetof(nabla_backend_v2, bias_add_activate),
        offsetof(nabla_backend_v2, activate_grad), offsetof(nabla_backend_v2, sum_rows),
        offsetof(nabla_backend_v2, loss),          offsetof(nabla_backend_v2, update),
        offsetof(nabla_backend_v2, dropout_mask),
        sizeof(nabla_backend_v2),                  sizeof(nabla_update),
        offsetof(nabla_update, t),                 offsetof(nabla_update, c2),
    };
    size_t count = sizeof offsets / sizeof offsets[0];
    for (size_t i = 0; i < n && i < count; i++) out[i] = offsets[i];
    return count;
}
