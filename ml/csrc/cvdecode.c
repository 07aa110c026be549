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

#include "kernels.h"

#define MAXR 16         /* rows decoded together in one block (they share each weight read) */
#define PRIOR 0
#define PERTURB 1
#define FIXED 2
#define EXPECTED (-1.0f)
#define DECIDE (-2.0f)

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
