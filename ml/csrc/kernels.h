/* The arithmetic kernels of the compiled decoder (cvdecode.c): products with weight panels,
 * a vectorised exp and the GRU gates. Every output of a product sums its terms in one order
 * (k ascending, from the bias) whichever kernel computes it, so that rows never mix. */
#ifndef CVDECODE_KERNELS_H
#define CVDECODE_KERNELS_H

#include <math.h>
#include <stdint.h>
#if defined(__FMA__) || defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* A weight matrix W (k, n) stored as panels of 8 columns: panel p holds W[:, 8p:8p+8] as (k, 8),
 * zero past n; bias (panels * 8,) zero past n, or NULL. */
typedef struct {
    const float *w, *b;
    int32_t k, n, panels;
} Mat;


static inline v8 vset(float s) { return (v8){s, s, s, s, s, s, s, s}; }

static inline v8 vfma(v8 a, v8 b, v8 c) {
#if defined(__FMA__)
    return (v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c; /* built with -ffp-contract=off: one rounding order in every kernel */
#endif
}

/* y[r, 8*p0 : 8*(p0+P)] = b + x[r, :k] @ W for R rows: R*P accumulators, each a chain over k. */
#define KERNEL(R, P)                                                                          \
    static void mv_##R##_##P(const Mat *m, int p0, const float *x, int xs, float *y, int ys) { \
        v8 acc[R * P];                                                                        \
        for (int p = 0; p < P; p++) {                                                         \
            v8 b0 = m->b ? *(const v8u *)(m->b + 8 * (p0 + p)) : vset(0.f);                   \
            for (int r = 0; r < R; r++) acc[r * P + p] = b0;                                  \
        }                                                                                     \
        const float *w = m->w + (size_t)p0 * m->k * 8;                                        \
        const size_t pst = (size_t)m->k * 8;                                                  \
        for (int k = 0; k < m->k; k++) {                                                      \
            v8 wv[P];                                                                         \
            for (int p = 0; p < P; p++) wv[p] = *(const v8u *)(w + p * pst + (size_t)k * 8);  \
            for (int r = 0; r < R; r++) {                                                     \
                v8 xb = vset(x[r * xs + k]);                                                  \
                for (int p = 0; p < P; p++) acc[r * P + p] = vfma(xb, wv[p], acc[r * P + p]); \
            }                                                                                 \
        }                                                                                     \
        for (int r = 0; r < R; r++)                                                           \
            for (int p = 0; p < P; p++) *(v8u *)(y + r * ys + 8 * (p0 + p)) = acc[r * P + p]; \
    }
KERNEL(6, 2)
KERNEL(6, 1)
KERNEL(4, 2)
KERNEL(4, 1)
KERNEL(2, 4)
KERNEL(2, 1)
KERNEL(1, 8)
KERNEL(1, 1)

/* y (R, ys) = b + x (R, xs) @ W over all panels (writes m->panels * 8 columns per row). Panels
 * in chunks of 8 (64 columns: K x 64 weights stay in L2), each chunk for all rows: the rows
 * share every weight read from memory; rows in groups of 6, 4, 2, 1 with 12, 8, 8, 8 chains of
 * multiply-adds to cover their latency. */
static void matvec(const Mat *m, int R, const float *x, int xs, float *y, int ys) {
    const int P = m->panels;
    for (int c0 = 0; c0 < P; c0 += 8) {
        const int c1 = c0 + 8 < P ? c0 + 8 : P;
        int r = 0, p;
        for (; r + 6 <= R; r += 6) {
            for (p = c0; p + 2 <= c1; p += 2) mv_6_2(m, p, x + r * xs, xs, y + r * ys, ys);
            for (; p < c1; p++) mv_6_1(m, p, x + r * xs, xs, y + r * ys, ys);
        }
        if (R - r >= 4) {
            for (p = c0; p + 2 <= c1; p += 2) mv_4_2(m, p, x + r * xs, xs, y + r * ys, ys);
            for (; p < c1; p++) mv_4_1(m, p, x + r * xs, xs, y + r * ys, ys);
            r += 4;
        }
        if (R - r >= 2) {
            for (p = c0; p + 4 <= c1; p += 4) mv_2_4(m, p, x + r * xs, xs, y + r * ys, ys);
            for (; p < c1; p++) mv_2_1(m, p, x + r * xs, xs, y + r * ys, ys);
            r += 2;
        }
        if (R - r >= 1) {
            for (p = c0; p + 8 <= c1; p += 8) mv_1_8(m, p, x + r * xs, xs, y + r * ys, ys);
            for (; p < c1; p++) mv_1_1(m, p, x + r * xs, xs, y + r * ys, ys);
        }
    }
}

static inline void lrelu(float *y, int n) {
    for (int j = 0; j < n; j++) y[j] = y[j] > 0.f ? y[j] : 0.1f * y[j];
}

/* exp for x <= 88 (Cody-Waite reduction, Cephes' polynomial; ~1 ulp); x < -87 gives ~1e-38. */
static inline v8 vexp(v8 x) {
    const v8 lo = vset(-87.0f), hi = vset(88.0f);
    v8i m = x < lo;
    x = (v8)(((v8i)x & ~m) | ((v8i)lo & m));
    m = x > hi;
    x = (v8)(((v8i)x & ~m) | ((v8i)hi & m));
    const v8 magic = vset(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    v8 n = (x * vset(1.44269504088896341f) + magic) - magic;
    v8 r = x - n * vset(0.693359375f) - n * vset(-2.12194440e-4f);
    v8 p = vset(1.9875691500E-4f);
    p = p * r + vset(1.3981999507E-3f);
    p = p * r + vset(8.3334519073E-3f);
    p = p * r + vset(4.1665795894E-2f);
    p = p * r + vset(1.6666665459E-1f);
    p = p * r + vset(5.0000001201E-1f);
    p = p * r * r + r + vset(1.0f);
    v8i e = (__builtin_convertvector(n, v8i) + 127) << 23;
    return p * (v8)e;
}

/* e[j] = exp(s * l[j] - max_j(s * l[j])) for j < K (e padded to a multiple of 8). */
static void head_exp(const float *l, int K, float s, float *e) {
    float mx = -INFINITY;
    for (int j = 0; j < K; j++) {
        const float v = s * l[j];
        mx = v > mx ? v : mx;
    }
    int j = 0;
    for (; j + 8 <= K; j += 8) *(v8u *)(e + j) = vexp(vset(s) * *(const v8u *)(l + j) - vset(mx));
    if (j < K) {
        float t[8];
        for (int q = 0; q < 8; q++) t[q] = j + q < K ? s * l[j + q] - mx : -87.0f;
        *(v8u *)(e + j) = vexp(*(const v8u *)t);
    }
}

static inline float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline v8 vsigmoid(v8 x) { return vset(1.0f) / (vset(1.0f) + vexp(-x)); }

/* One GRU cell's new state for one row (torch's gates r, z, n): gi = x W_ih + b_ih and
 * gh = h W_hh + b_hh, each (3H,); eight columns at a time, tanh(x) as 2 sigmoid(2x) - 1. */
static void gru_gates(const float *gi, const float *gh, const float *h, float *hn, int H) {
    int j = 0;
    for (; j + 8 <= H; j += 8) {
        const v8 r = vsigmoid(*(const v8u *)(gi + j) + *(const v8u *)(gh + j));
        const v8 z = vsigmoid(*(const v8u *)(gi + H + j) + *(const v8u *)(gh + H + j));
        const v8 n = vset(2.0f) * vsigmoid(vset(2.0f) * (*(const v8u *)(gi + 2 * H + j) +
                                                        r * *(const v8u *)(gh + 2 * H + j))) - vset(1.0f);
        *(v8u *)(hn + j) = (vset(1.0f) - z) * n + z * *(const v8u *)(h + j);
    }
    for (; j < H; j++) {
        const float r = sigmoidf_(gi[j] + gh[j]);
        const float z = sigmoidf_(gi[H + j] + gh[H + j]);
        const float n = 2.0f * sigmoidf_(2.0f * (gi[2 * H + j] + r * gh[2 * H + j])) - 1.0f;
        hn[j] = (1.0f - z) * n + z * h[j];
    }
}

#endif
