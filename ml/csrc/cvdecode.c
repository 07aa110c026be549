/* The CVRNN decode loop compiled: the arithmetic of ml.fastdecode.NumpyDecoder._decode (and so
 * of CVRNN.step), a whole pass of n notes for B rows in one call (ml/cdecode.py builds and loads it).
 *
 * Why: at batch 1-16 the numpy step is bound by Python's per-operation cost (~70 operations a
 * note); here a note of one row is ~1.2 M multiply-adds streamed through the weight panels.
 *
 * Rows never mix: every output of every product sums its terms in the same order (k ascending,
 * from the bias, fused multiply-add where the CPU has it) whatever the rows beside it, so a
 * render's notes do not depend on the renders sharing its pass (no BLAS row tile needed), and
 * the rows can be split between threads with no synchronisation at all.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__FMA__) || defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define MAXR 16         /* rows decoded together in one block (they share each weight read) */
#define PRIOR 0
#define PERTURB 1
#define FIXED 2
#define EXPECTED (-1.0f)
#define DECIDE (-2.0f)

/* A weight matrix W (k, n) stored as panels of 8 columns: panel p holds W[:, 8p:8p+8] as (k, 8),
 * zero past n; bias (panels * 8,) zero past n, or NULL. */
typedef struct {
    const float *w, *b;
    int32_t k, n, panels;
} Mat;

typedef struct {
    int32_t Z, U, S, Hs, L, NH, n_seg, pattern_head, decide_head, total_classes;
    float lift_threshold;
    Mat prior[3], prior_out, psi[3], psi_out, g2, g4, phi[3], s_phi, gi[4], gh[4];
    const float *phi_tab[3];     /* (total_classes, phi[0].panels * 8): each class's embedding
                                    through the rows of phi's layer l that read the embeddings */
    const int32_t *head_lo, *head_size;   /* (NH,) */
    const float *digits;         /* (size[pattern_head], n_seg): the depth of each segment */
    const int64_t *digit_w;      /* (n_seg,) */
    const uint8_t *comes_up;     /* (size[decide_head],) */
} Net;

typedef struct {
    int32_t n, B, threads;
    const float *c_gen, *c_state;   /* (n, B, U), (n, B, S) */
    float *h;                       /* (L, B, Hs) in / out */
    const float *eps, *u;           /* (n, B, Z), (n, B, NH) */
    const int32_t *mode;            /* (B,) */
    const float *temps;             /* (B, NH) */
    const float *zt;                /* (B,) */
    int64_t *x_prev;                /* (B, NH) in / out */
    uint8_t *has_prev;              /* (B,) in / out */
    const float *delta, *z_fixed;   /* (n, B, Z) or NULL */
    const uint8_t *scope;           /* (n, B, NH) or NULL */
    const uint8_t *live;            /* (n, B) */
    int64_t *xs;                    /* (n, B, NH) out */
    float *zs;                      /* (n, B, Z) out */
} Pass;

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

/* One head's class for one row (see NumpyDecoder._decode: sample / greedy / expected / decide). */
static int64_t head_class(const Net *net, int k, const float *l, float t, float u, float *e) {
    const int K = net->head_size[k];
    if (t == 0.f) { /* the most likely class (the first of equals) */
        int best = 0;
        for (int j = 1; j < K; j++)
            if (l[j] > l[best]) best = j;
        return best;
    }
    if (t == EXPECTED) {
        head_exp(l, K, 1.f, e);
        if (k == net->pattern_head) { /* each segment at its expected depth */
            double s = 0;
            for (int j = 0; j < K; j++) s += e[j];
            int64_t x = 0;
            for (int d = 0; d < net->n_seg; d++) {
                double m = 0;
                for (int j = 0; j < K; j++) m += (double)e[j] * net->digits[j * net->n_seg + d];
                x += (int64_t)rint(m / s) * net->digit_w[d];
            }
            return x;
        }
        v8 vs = vset(0.f), vm = vset(0.f), idx = {0, 1, 2, 3, 4, 5, 6, 7};
        int j = 0;
        for (; j + 8 <= K; j += 8, idx += vset(8.f)) {
            const v8 ev = *(const v8u *)(e + j);
            vs += ev;
            vm += ev * idx;
        }
        float s = 0, m = 0;
        for (int q = 0; q < 8; q++) {
            s += vs[q];
            m += vm[q];
        }
        for (; j < K; j++) {
            s += e[j];
            m += e[j] * (float)j;
        }
        return (int64_t)rintf(m / s);
    }
    if (t == DECIDE && k == net->decide_head) { /* does the pedal come up? then a pattern that agrees */
        head_exp(l, K, 1.f, e);
        float up = 0, all = 0;
        for (int j = 0; j < K; j++) {
            all += e[j];
            if (net->comes_up[j]) up += e[j];
        }
        const uint8_t want = up >= net->lift_threshold * all;
        float cum = 0;
        for (int j = 0; j < K; j++)
            if (net->comes_up[j] == want) cum += e[j];
        const float thresh = u * cum;
        float c = 0;
        int x = 0;
        for (int j = 0; j < K; j++) {
            if (net->comes_up[j] == want) c += e[j];
            x += c <= thresh;
        }
        return x < K - 1 ? x : K - 1;
    }
    /* drawn at temperature t: inverse CDF of the uniform u */
    head_exp(l, K, 1.f / fmaxf(t, 1e-6f), e);
    float cum = 0;
    for (int j = 0; j < K; j++) {
        cum += e[j];
        e[j] = cum;
    }
    const float thresh = u * cum;
    int x = 0;
    for (int j = 0; j < K; j++) x += e[j] < thresh;
    return x < K - 1 ? x : K - 1;
}

/* Workspace of one block of rows (one thread's). */
typedef struct {
    float *hz, *prior, *mo, *psi, *psout, *gen, *gen2, *logits, *phi, *tmp, *inp, *gi, *gh, *e;
    int s_prior, s_psi, s_phi, s_logits;
    int64_t x[MAXR][16];
    float z[MAXR][8];
} Work;

/* A dense MLP (DenseMLP) on buf (R rows, stride s), whose first d_in columns hold the input:
 * layer l reads the input and every earlier output, and writes its own after them. */
static float *dense(const Mat *layers, int d_in, int U, int R, float *buf, int s) {
    int end = d_in;
    for (int l = 0; l < 3; l++) {
        matvec(&layers[l], R, buf, s, buf + end, s);
        for (int r = 0; r < R; r++) lrelu(buf + r * s + end, U);
        end += U;
    }
    return buf + end - U;
}

static void step_block(const Net *net, const Pass *ps, Work *w, int i, int r0, int R) {
    const int Z = net->Z, U = net->U, S = net->S, Hs = net->Hs, L = net->L, NH = net->NH, B = ps->B;
    /* the prior p(z | h_top) */
    for (int r = 0; r < R; r++)
        memcpy(w->prior + r * w->s_prior, ps->h + ((size_t)(L - 1) * B + r0 + r) * Hs, Hs * sizeof(float));
    const float *pr = dense(net->prior, Hs, U, R, w->prior, w->s_prior);
    matvec(&net->prior_out, R, pr, w->s_prior, w->mo, 16);
    for (int r = 0; r < R; r++) {
        const int b = r0 + r;
        const float *mu = w->mo + r * 16, *lv = mu + Z;
        const size_t o = ((size_t)i * B + b) * Z;
        for (int d = 0; d < Z; d++) {
            float z;
            switch (ps->mode[b]) {
            case PERTURB: z = mu[d] + ps->delta[o + d] * expf(lv[d]); break;
            case FIXED: z = ps->z_fixed[o + d]; break;
            default: z = mu[d] + (ps->zt[b] * ps->eps[o + d]) * expf(0.5f * lv[d]);
            }
            w->z[r][d] = z;
            w->psi[r * w->s_psi + d] = z;
        }
    }
    /* x_n from c_n and psi(z_n) alone */
    const float *pz = dense(net->psi, Z, U, R, w->psi, w->s_psi);
    const int s_out = net->psi_out.panels * 8;
    matvec(&net->psi_out, R, pz, w->s_psi, w->psout, s_out);
    for (int r = 0; r < R; r++) {
        const float *cg = ps->c_gen + ((size_t)i * B + r0 + r) * U;
        float *g = w->gen + r * net->g2.k;
        for (int j = 0; j < U; j++) g[j] = cg[j] + w->psout[r * s_out + j];
        lrelu(g, U);
    }
    const int s_g2 = net->g2.panels * 8;
    matvec(&net->g2, R, w->gen, net->g2.k, w->gen2, s_g2);
    for (int r = 0; r < R; r++) lrelu(w->gen2 + r * s_g2, U);
    matvec(&net->g4, R, w->gen2, s_g2, w->logits, w->s_logits);
    for (int r = 0; r < R; r++) {
        const int b = r0 + r;
        const float *lg = w->logits + r * w->s_logits;
        int64_t *x = w->x[r];
        for (int k = 0; k < NH; k++)
            x[k] = head_class(net, k, lg + net->head_lo[k], ps->temps[b * NH + k],
                              ps->u[((size_t)i * B + b) * NH + k], w->e);
        if (ps->scope && ps->has_prev[b])
            for (int k = 0; k < NH; k++)
                if (!ps->scope[((size_t)i * B + b) * NH + k]) x[k] = ps->x_prev[b * NH + k];
    }
    /* phi(x_n): the embeddings' part of each layer from the tables, the rest as products */
    const int sp = w->s_phi, np_ = net->phi[0].panels * 8;
    for (int l = 0; l < 3; l++) {
        float *out = w->phi + l * U;
        if (l == 0) {
            for (int r = 0; r < R; r++)
                for (int j = 0; j < U; j++) out[r * sp + j] = net->phi[0].b[j];
        } else {
            matvec(&net->phi[l], R, w->phi, sp, w->tmp, np_);
            for (int r = 0; r < R; r++) memcpy(out + r * sp, w->tmp + r * np_, U * sizeof(float));
        }
        for (int r = 0; r < R; r++)
            for (int k = 0; k < NH; k++) {
                const float *t = net->phi_tab[l] + (size_t)(net->head_lo[k] + w->x[r][k]) * np_;
                float *o = out + r * sp;
                for (int j = 0; j < U; j++) o[j] += t[j];
            }
        for (int r = 0; r < R; r++) lrelu(out + r * sp, U);
    }
    const int s_in = net->s_phi.panels * 8;
    matvec(&net->s_phi, R, w->phi + 2 * U, sp, w->inp, s_in);
    for (int r = 0; r < R; r++) {
        const float *cs = ps->c_state + ((size_t)i * B + r0 + r) * S;
        float *in = w->inp + r * s_in;
        for (int j = 0; j < S; j++) in[j] = cs[j] + in[j] + w->psout[r * s_out + U + j];
    }
    /* the GRU cells: state_in -> h */
    const float *xin = w->inp;
    int s_x = s_in;
    const int s_g = net->gi[0].panels * 8;
    for (int l = 0; l < L; l++) {
        float *hl = w->tmp;  /* (R, Hs): this layer's state for these rows */
        for (int r = 0; r < R; r++)
            memcpy(hl + r * Hs, ps->h + ((size_t)l * B + r0 + r) * Hs, Hs * sizeof(float));
        matvec(&net->gi[l], R, xin, s_x, w->gi, s_g);
        matvec(&net->gh[l], R, hl, Hs, w->gh, s_g);
        for (int r = 0; r < R; r++)
            gru_gates(w->gi + r * s_g, w->gh + r * s_g, hl + r * Hs, w->hz + (size_t)(l * MAXR + r) * Hs, Hs);
        xin = w->hz + (size_t)l * MAXR * Hs;
        s_x = Hs;
    }
    /* commit the live rows: state, classes, z */
    for (int r = 0; r < R; r++) {
        const int b = r0 + r;
        if (!ps->live[(size_t)i * B + b]) continue;
        for (int l = 0; l < L; l++)
            memcpy(ps->h + ((size_t)l * B + b) * Hs, w->hz + (size_t)(l * MAXR + r) * Hs, Hs * sizeof(float));
        for (int k = 0; k < NH; k++) {
            ps->xs[((size_t)i * B + b) * NH + k] = w->x[r][k];
            ps->x_prev[b * NH + k] = w->x[r][k];
        }
        ps->has_prev[b] = 1;
        for (int d = 0; d < Z; d++) ps->zs[((size_t)i * B + b) * Z + d] = w->z[r][d];
    }
}

static size_t up8(size_t n) { return (n + 7) / 8 * 8; }

typedef struct {
    const Net *net;
    const Pass *ps;
    int r0, r1, err;
} Job;

static void *run_rows(void *arg) {
    Job *job = arg;
    const Net *net = job->net;
    const int U = net->U;
    Work w;
    w.s_prior = (int)up8(net->Hs + 3 * U + 8);
    w.s_psi = (int)up8(net->Z + 3 * U + 8);
    w.s_phi = (int)up8(3 * U + 8);
    w.s_logits = net->g4.panels * 8;
    const size_t wide = up8((size_t)net->phi[0].panels * 8 > (size_t)net->gi[0].panels * 8
                                ? (size_t)net->phi[0].panels * 8 : (size_t)net->gi[0].panels * 8);
    size_t sizes[] = {(size_t)net->L * MAXR * net->Hs, (size_t)MAXR * w.s_prior, MAXR * 16,
                      (size_t)MAXR * w.s_psi, (size_t)MAXR * net->psi_out.panels * 8,
                      (size_t)MAXR * up8(net->g2.k), (size_t)MAXR * net->g2.panels * 8,
                      (size_t)MAXR * w.s_logits, (size_t)MAXR * w.s_phi,
                      (size_t)MAXR * (wide > (size_t)net->Hs ? wide : (size_t)net->Hs),
                      (size_t)MAXR * net->s_phi.panels * 8, (size_t)MAXR * net->gi[0].panels * 8,
                      (size_t)MAXR * net->gh[0].panels * 8, up8(net->total_classes) + 8};
    const int nbuf = sizeof(sizes) / sizeof(sizes[0]);
    size_t total = 0;
    for (int q = 0; q < nbuf; q++) total += up8(sizes[q]) + 8;
    float *mem = aligned_alloc(32, up8(total) * sizeof(float));
    if (!mem) {
        job->err = 1;
        return NULL;
    }
    memset(mem, 0, up8(total) * sizeof(float));
    float **bufs[] = {&w.hz, &w.prior, &w.mo, &w.psi, &w.psout, &w.gen, &w.gen2, &w.logits,
                      &w.phi, &w.tmp, &w.inp, &w.gi, &w.gh, &w.e};
    float *p = mem;
    for (int q = 0; q < nbuf; q++) {
        *bufs[q] = p;
        p += up8(sizes[q]) + 8;
    }
    const Pass *ps = job->ps;
    for (int i = 0; i < ps->n; i++)
        for (int r0 = job->r0; r0 < job->r1; r0 += MAXR) {
            const int R = job->r1 - r0 < MAXR ? job->r1 - r0 : MAXR;
            int any = 0;
            for (int r = 0; r < R; r++) any |= ps->live[(size_t)i * ps->B + r0 + r];
            if (any) step_block(net, ps, &w, i, r0, R);
        }
    free(mem);
    return NULL;
}

/* Decode a pass; returns 0, or 1 when memory ran out / a thread could not start. */
int cv_decode(const Net *net, const Pass *ps) {
    int T = ps->threads < 1 ? 1 : ps->threads;
    if (T > ps->B) T = ps->B > 0 ? ps->B : 1;   /* rows split evenly between the threads */
    if (T > 64) T = 64;
    Job jobs[64];
    pthread_t tid[64];
    for (int t = 0; t < T; t++)
        jobs[t] = (Job){net, ps, (int)((long)ps->B * t / T), (int)((long)ps->B * (t + 1) / T), 0};
    int started = 0;
    for (int t = 1; t < T; t++) {
        if (pthread_create(&tid[t], NULL, run_rows, &jobs[t]) != 0) {
            jobs[t].err = 1;
            break;
        }
        started = t;
    }
    run_rows(&jobs[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    int err = 0;
    for (int t = 0; t < T; t++) err |= jobs[t].err;
    return err;
}

int cv_abi(void) { return (int)sizeof(Net) * 1000 + (int)sizeof(Pass); }

/* A stacked GRU (torch.nn.GRU, gates r, z, n) over one sequence: x (T, D) -> out (T, H), the
 * top layer's state at each step; h (L, H) in / out. The score encoder's recurrence over notes,
 * which torch steps at several microseconds of dispatch per note and layer. */
int cv_gru_seq(const Mat *wi, const Mat *wh, int L, int H, int T, const float *x, int D, float *h, float *out) {
    const int G = wi[0].panels * 8;
    float *mem = aligned_alloc(32, (size_t)(3 * G + 8) * sizeof(float));
    if (!mem) return 1;
    float *gi = mem, *gh = mem + G, *hn = mem + 2 * G;
    for (int t = 0; t < T; t++) {
        const float *xin = x + (size_t)t * D;
        for (int l = 0; l < L; l++) {
            float *hl = h + (size_t)l * H;
            matvec(&wi[l], 1, xin, 0, gi, 0);
            matvec(&wh[l], 1, hl, 0, gh, 0);
            gru_gates(gi, gh, hl, hn, H);
            memcpy(hl, hn, H * sizeof(float));
            xin = hl;
        }
        memcpy(out + (size_t)t * H, h + (size_t)(L - 1) * H, H * sizeof(float));
    }
    free(mem);
    return 0;
}
