/*
 * Where the ranks of an emulated NCCL communicator meet (nccl.cpp): each rank
 * is a process of its own, and every exchange is an all-gather of bytes
 * through files in a directory named by the communicator's unique id.
 *
 * Exchange k: rank r writes its bytes to <dir>/<k>.<r> (written aside and
 * renamed, so a file that exists is whole), waits until every rank's file of
 * exchange k exists and reads them all. A rank writes exchange k + 1 only
 * after reading all of k, so once it has seen every file of k + 1 no one
 * reads its file of k any more, and it removes it. The last rank to leave
 * (bye.<r> files) removes the directory.
 *
 * Files, not shared memory: nothing to size in advance, nothing to set up
 * before the first rank arrives, and a dead peer is a timeout, not a hang.
 */
#ifndef LIBDAT_KERNELS_EMU_RENDEZVOUS_H
#define LIBDAT_KERNELS_EMU_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <vector>

namespace dat_emu {

typedef std::vector<char> bytes;

class rendezvous {
public:
    /* Rank `rank` of `nranks` of the communicator whose id is id[0, id_bytes). */
    rendezvous(const void *id, size_t id_bytes, int nranks, int rank);
    ~rendezvous();
    rendezvous(const rendezvous &) = delete;
    rendezvous &operator=(const rendezvous &) = delete;

    /* All-gathers `mine`: (*all)[j] is rank j's. On a timeout (a peer that
     * never comes: DAT_EMU_NCCL_TIMEOUT_S, 120 s by default) or an I/O error
     * it returns false with *why; every later exchange fails too, since the
     * ranks no longer agree on which exchange is which. With one rank it
     * touches no file. */
    bool exchange(const bytes &mine, std::vector<bytes> *all, std::string *why);

private:
    std::string path(uint64_t k, int r) const;
    bool wait_for(const std::string &p, std::string *why) const;
    void leave();

    std::string dir_;
    int nranks_, rank_;
    uint64_t next_ = 0;  /* the next exchange's number */
    bool broken_ = false;
    double timeout_s_;
};

} // namespace dat_emu

#endif
