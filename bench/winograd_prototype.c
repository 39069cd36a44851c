/* winograd_prototype.c: a standalone measurement, not part of the build.
 * Winograd F(2x2,3x3) for Conv2D 3x3 stride 1 'same', NHWC, bias + ReLU, AVX2,
 * checked against a naive loop and timed against the avx2 target's code for
 * the same layer (c56.c: `convgen generate --target avx2`; build:
 * cc -O2 -march=native -DH=56 -DC=64 -DK=64 winograd_prototype.c c56.o -lm). */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef H
#define H 56
#endif
#ifndef C
#define C 64
#endif
#ifndef K
#define K 64
#endif
#define W H
#define TH ((H + 1) / 2)
#define TW ((W + 1) / 2)
#define T 6

static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}

/* U[xi][ktile][c][16] */
static void transform_weights(const float *g, float *U)
{
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) {
            float gg[3][3], tmp[4][3], u[4][4];
            for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) gg[i][j] = g[((i * 3 + j) * C + c) * K + k];
            for (int j = 0; j < 3; j++) {
                tmp[0][j] = gg[0][j];
                tmp[1][j] = 0.5f * (gg[0][j] + gg[1][j] + gg[2][j]);
                tmp[2][j] = 0.5f * (gg[0][j] - gg[1][j] + gg[2][j]);
                tmp[3][j] = gg[2][j];
            }
            for (int i = 0; i < 4; i++) {
                u[i][0] = tmp[i][0];
                u[i][1] = 0.5f * (tmp[i][0] + tmp[i][1] + tmp[i][2]);
                u[i][2] = 0.5f * (tmp[i][0] - tmp[i][1] + tmp[i][2]);
                u[i][3] = tmp[i][2];
            }
            for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++)
                U[(((i * 4 + j) * (K / 16) + k / 16) * C + c) * 16 + k % 16] = u[i][j];
        }
}

__attribute__((target("avx2,fma")))
static void wino(const float *restrict in, float *restrict out, const float *restrict U, const float *restrict bias)
{
    static float V[16][T][C] __attribute__((aligned(64)));
    static float M[16][T][K] __attribute__((aligned(64)));
    const __m256 zero = _mm256_setzero_ps();
    for (int th = 0; th < TH; th++) {
        for (int tw0 = 0; tw0 < TW; tw0 += T) {
            const int nt = TW - tw0 < T ? TW - tw0 : T;
            /* input transform: tile t's 4x4 patch starts at (2th - 1, 2tw - 1) */
            for (int t = 0; t < nt; t++) {
                const int ih0 = 2 * th - 1, iw0 = 2 * (tw0 + t) - 1;
                for (int c = 0; c < C; c += 8) {
                    __m256 d[4][4];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {
                            const int ih = ih0 + i, iw = iw0 + j;
                            d[i][j] = ih >= 0 && ih < H && iw >= 0 && iw < W ? _mm256_loadu_ps(in + (ih * W + iw) * C + c) : zero;
                        }
                    __m256 e[4][4];
                    for (int j = 0; j < 4; j++) {
                        e[0][j] = _mm256_sub_ps(d[0][j], d[2][j]);
                        e[1][j] = _mm256_add_ps(d[1][j], d[2][j]);
                        e[2][j] = _mm256_sub_ps(d[2][j], d[1][j]);
                        e[3][j] = _mm256_sub_ps(d[1][j], d[3][j]);
                    }
                    for (int i = 0; i < 4; i++) {
                        _mm256_storeu_ps(&V[i * 4 + 0][t][c], _mm256_sub_ps(e[i][0], e[i][2]));
                        _mm256_storeu_ps(&V[i * 4 + 1][t][c], _mm256_add_ps(e[i][1], e[i][2]));
                        _mm256_storeu_ps(&V[i * 4 + 2][t][c], _mm256_sub_ps(e[i][2], e[i][1]));
                        _mm256_storeu_ps(&V[i * 4 + 3][t][c], _mm256_sub_ps(e[i][1], e[i][3]));
                    }
                }
            }
            /* 16 GEMMs: M[xi][t][k] = sum_c V[xi][t][c] U[xi][c][k] */
            for (int xi = 0; xi < 16; xi++) {
                for (int kt = 0; kt < K / 16; kt++) {
                    const float *u = U + ((xi * (K / 16) + kt) * C) * 16;
                    __m256 a0 = zero, a1 = zero, b0 = zero, b1 = zero, c0 = zero, c1 = zero;
                    __m256 d0 = zero, d1 = zero, e0 = zero, e1 = zero, f0 = zero, f1 = zero;
                    const float *v = &V[xi][0][0];
                    for (int c = 0; c < C; c++, u += 16) {
                        const __m256 w0 = _mm256_loadu_ps(u), w1 = _mm256_loadu_ps(u + 8);
                        __m256 x;
                        x = _mm256_broadcast_ss(v + c); a0 = _mm256_fmadd_ps(x, w0, a0); a1 = _mm256_fmadd_ps(x, w1, a1);
                        x = _mm256_broadcast_ss(v + C + c); b0 = _mm256_fmadd_ps(x, w0, b0); b1 = _mm256_fmadd_ps(x, w1, b1);
                        x = _mm256_broadcast_ss(v + 2 * C + c); c0 = _mm256_fmadd_ps(x, w0, c0); c1 = _mm256_fmadd_ps(x, w1, c1);
                        x = _mm256_broadcast_ss(v + 3 * C + c); d0 = _mm256_fmadd_ps(x, w0, d0); d1 = _mm256_fmadd_ps(x, w1, d1);
                        x = _mm256_broadcast_ss(v + 4 * C + c); e0 = _mm256_fmadd_ps(x, w0, e0); e1 = _mm256_fmadd_ps(x, w1, e1);
                        x = _mm256_broadcast_ss(v + 5 * C + c); f0 = _mm256_fmadd_ps(x, w0, f0); f1 = _mm256_fmadd_ps(x, w1, f1);
                    }
                    float *m = &M[xi][0][kt * 16];
                    _mm256_storeu_ps(m, a0); _mm256_storeu_ps(m + 8, a1);
                    _mm256_storeu_ps(m + K, b0); _mm256_storeu_ps(m + K + 8, b1);
                    _mm256_storeu_ps(m + 2 * K, c0); _mm256_storeu_ps(m + 2 * K + 8, c1);
                    _mm256_storeu_ps(m + 3 * K, d0); _mm256_storeu_ps(m + 3 * K + 8, d1);
                    _mm256_storeu_ps(m + 4 * K, e0); _mm256_storeu_ps(m + 4 * K + 8, e1);
                    _mm256_storeu_ps(m + 5 * K, f0); _mm256_storeu_ps(m + 5 * K + 8, f1);
                }
            }
            /* output transform: Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1] */
            for (int t = 0; t < nt; t++) {
                const int oh0 = 2 * th, ow0 = 2 * (tw0 + t);
                for (int k = 0; k < K; k += 8) {
                    __m256 m[16], r[2][4];
                    for (int x = 0; x < 16; x++) m[x] = _mm256_loadu_ps(&M[x][t][k]);
                    for (int j = 0; j < 4; j++) {
                        r[0][j] = _mm256_add_ps(_mm256_add_ps(m[j], m[4 + j]), m[8 + j]);
                        r[1][j] = _mm256_sub_ps(_mm256_sub_ps(m[4 + j], m[8 + j]), m[12 + j]);
                    }
                    const __m256 b = _mm256_loadu_ps(bias + k);
                    for (int i = 0; i < 2; i++) {
                        const __m256 y0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r[i][0], r[i][1]), r[i][2]), b);
                        const __m256 y1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(r[i][1], r[i][2]), r[i][3]), b);
                        if (oh0 + i < H) {
                            _mm256_storeu_ps(out + ((oh0 + i) * W + ow0) * K + k, _mm256_max_ps(y0, zero));
                            if (ow0 + 1 < W)
                                _mm256_storeu_ps(out + ((oh0 + i) * W + ow0 + 1) * K + k, _mm256_max_ps(y1, zero));
                        }
                    }
                }
            }
        }
    }
}

static void naive(const float *in, const float *g, const float *bias, float *out)
{
    for (int oh = 0; oh < H; oh++) for (int ow = 0; ow < W; ow++) for (int k = 0; k < K; k++) {
        double acc = bias[k];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) {
            int ih = oh - 1 + i, iw = ow - 1 + j;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            for (int c = 0; c < C; c++) acc += (double)in[(ih * W + iw) * C + c] * g[((i * 3 + j) * C + c) * K + k];
        }
        out[(oh * W + ow) * K + k] = acc > 0 ? (float)acc : 0.0f;
    }
}

void layer(const float *restrict input, float *restrict output, int batch, const float *const weights[]);
void layer_pack(const float *const weights[], float *packed);

int main(void)
{
    float *in = aligned_alloc(64, sizeof(float) * H * W * C), *out = aligned_alloc(64, sizeof(float) * H * W * K);
    float *ref = malloc(sizeof(float) * H * W * K), *g = malloc(sizeof(float) * 9 * C * K);
    float *U = aligned_alloc(64, sizeof(float) * 16 * C * K), *bias = malloc(sizeof(float) * K);
    float *packed = aligned_alloc(64, sizeof(float) * 9 * C * K + 64);
    unsigned s = 1;
    for (int i = 0; i < H * W * C; i++) { s = s * 1103515245u + 12345u; in[i] = (float)((s >> 9) & 0xffff) / 65536.0f * 2 - 1; }
    for (int i = 0; i < 9 * C * K; i++) { s = s * 1103515245u + 12345u; g[i] = ((float)((s >> 9) & 0xffff) / 65536.0f * 2 - 1) * 0.1f; }
    for (int i = 0; i < K; i++) bias[i] = 0.01f * (i % 7);
    transform_weights(g, U);
    naive(in, g, bias, ref);
    wino(in, out, U, bias);
    double maxerr = 0, maxref = 0;
    for (int i = 0; i < H * W * K; i++) { double e = fabs(out[i] - ref[i]); if (e > maxerr) maxerr = e; if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]); }
    printf("max abs err %.3g (max |ref| %.3g)\n", maxerr, maxref);
    const float *Wt[3] = {g, bias, packed};
    layer_pack(Wt, packed);
    layer(in, out, 1, Wt);
    double e2 = 0; for (int i = 0; i < H * W * K; i++) { double e = fabs(out[i] - ref[i]); if (e > e2) e2 = e; }
    printf("direct max abs err %.3g\n", e2);
    double t[2][200]; int R = 200;
    for (int r = 0; r < R; r++) { double t0 = now(); wino(in, out, U, bias); double t1 = now(); layer(in, out, 1, Wt); double t2 = now(); t[0][r] = t1 - t0; t[1][r] = t2 - t1; }
    qsort(t[0], R, 8, cmp); qsort(t[1], R, 8, cmp);
    double f = 2.0 * H * W * C * K * 9;
    printf("H%d C%d K%d: winograd %.1f us (%.1f eff GF/s), direct %.1f us (%.1f GF/s), speedup %.2fx\n", H, C, K,
           t[0][R/2] * 1e6, f / t[0][R/2] * 1e-9, t[1][R/2] * 1e6, f / t[1][R/2] * 1e-9, t[1][R/2] / t[0][R/2]);
    return 0;
}
