/* Which nodes' gradients can live in the same buffer.
 *
 * The gradient of an add's output is also the gradient of each input, and
 * the whole of it for an input that feeds nothing else. The backward pass used
 * to copy it into each input's own buffer: in a residual network two
 * activation-sized copies per block and pass, a fifth of the memory traffic
 * of a backward pass's element-wise work, and one gradient buffer per input.
 * Here an input may take the add's buffer instead, so the add's backward has
 * nothing to do for it.
 *
 * An input with other consumers (a residual stream: the block's input feeds
 * its first layer and the add) may share too, when the add is its last
 * consumer: the add's gradient is then its first contribution, and the others
 * are added into the shared buffer as they come (graph.c: an op's dx_add, or
 * grad_commit). That changes the buffer under every other node that shares it,
 * so it is only allowed when each of those reads the buffer before it changes,
 * or needs the change. Sharers form a tree: the root owns the buffer, every other member
 * joined through its last consumer, an add (its parent), and needs the
 * root's gradient plus what was added for itself and its ancestors. The
 * backward pass runs node by node, highest index first; node j reads its
 * gradient when its turn comes, a node's other consumers add theirs at their
 * turns. So the plan holds when, for every member j, every addition made for a
 * member that is neither j nor an ancestor of j comes at a lower index than j.
 *
 * A node whose parent gets no gradient (a branch that does not lead to the
 * output) is not marked ready by it, so its first addition overwrites the
 * buffer instead: what the rule lets it overwrite is its own gradient alone.
 * An add of a node with itself (2 dy) fails the rule: the node's second
 * consumer is its parent. */
#include <stdlib.h>

#include "model.h"

typedef struct share_plan {
    int32_t *last;   /* per node: its highest-index consumer (a member's parent), or -1 */
    int32_t *second; /* per node: the next highest consumer, or -1 */
} share_plan;

static void note_consumer(share_plan *p, int32_t node, int32_t consumer)
{
    if (node < 0)
        return;
    if (consumer > p->last[node]) {
        p->second[node] = p->last[node];
        p->last[node] = consumer;
    } else if (consumer > p->second[node]) {
        p->second[node] = consumer;
    }
}

/* Whether anc is j or an ancestor of j in j's sharing tree. */
static int on_path(const dat_model *m, const share_plan *p, int32_t j, int32_t anc)
{
    for (int32_t k = j; k >= 0; k = m->nodes[k].grad_root == k ? -1 : p->last[k])
        if (k == anc)
            return 1;
    return 0;
}

/* The rule of the file's comment, over the members of root's tree. A member w
 * other than the root receives additions at its consumers below its parent,
 * the highest of which is second[w]. */
static int tree_holds(const dat_model *m, const share_plan *p, int32_t root)
{
    for (int32_t j = 0; j <= root; ++j) {
        if (m->nodes[j].grad_root != root)
            continue;
        for (int32_t w = 0; w < root; ++w)
            if (m->nodes[w].grad_root == root && p->second[w] >= j && !on_path(m, p, j, w))
                return 0;
    }
    return 1;
}

static void try_share(dat_model *m, const share_plan *p, int32_t j, int32_t add)
{
    if (p->last[j] != add || m->nodes[j].grad_root != j)
        return;
    m->nodes[j].grad_root = m->nodes[add].grad_root;
    if (!tree_holds(m, p, m->nodes[j].grad_root))
        m->nodes[j].grad_root = j;
}

void dat_graph_plan_grad_sharing(dat_model *m)
{
    int32_t n = m->n_nodes;
    for (int32_t i = 0; i < n; ++i)
        m->nodes[i].grad_root = i;
    if (n < 2)
        return;
    share_plan p = {malloc((size_t)n * sizeof *p.last), malloc((size_t)n * sizeof *p.second)};
    if (p.last && p.second) { /* else every node keeps its own buffer */
        for (int32_t i = 0; i < n; ++i)
            p.last[i] = p.second[i] = -1;
        for (int32_t i = 1; i < n; ++i) {
            note_consumer(&p, m->nodes[i].in[0], i);
            note_consumer(&p, m->nodes[i].in[1], i);
        }
        for (int32_t i = n - 1; i >= 1; --i)
            if (m->nodes[i].kind == DAT_LAYER_ADD) {
                try_share(m, &p, m->nodes[i].in[0], i);
                try_share(m, &p, m->nodes[i].in[1], i);
            }
    }
    free(p.last);
    free(p.second);
}
