/* What the MPI runtime does to the other ranks when one dies (docs/fault-domains.md).
 * Build: mpicc -O2 -o rank_death rank_death.c
 * Run:   mpirun -n 4 ./rank_death kill|exit|exit0 VICTIM SECONDS [nosend] [shrink]
 * The victim raises SIGKILL (kill), or exits with status 3 (exit) or 0 (exit0) without
 * MPI_Finalize, one second after MPI_Init. The others poll MPI_Iprobe every 10 ms and print a
 * line each second; at 2 s rank 0 sends 1 MiB to the victim on a sub-communicator with
 * MPI_ERRORS_RETURN (MPI_Isend, then MPI_Test for up to 3 s) and prints what it got. At the
 * end, each survivor prints "alive at end" and calls MPI_Finalize. With "nosend" nobody
 * sends to the dead rank. With "shrink" (ULFM: Open MPI 5 `mpirun --with-ft ulfm`) the
 * survivors call MPIX_Comm_shrink on the sub-communicator at 3 s and MPI_Barrier on the result. */
#include <mpi.h>
#if defined(OPEN_MPI) && OMPI_MAJOR_VERSION >= 5
#include <mpi-ext.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

static void say(int rank, const char *what) {
    printf("%.3f rank %d pid %d: %s\n", now(), rank, (int)getpid(), what);
    fflush(stdout);
}

static void describe(int rank, const char *op, int rc) {
    char msg[MPI_MAX_ERROR_STRING + 64], err[MPI_MAX_ERROR_STRING];
    int len = 0, cls = 0;
    if (rc == MPI_SUCCESS) {
        snprintf(msg, sizeof msg, "%s -> MPI_SUCCESS", op);
    } else {
        MPI_Error_class(rc, &cls);
        MPI_Error_string(rc, err, &len);
        snprintf(msg, sizeof msg, "%s -> error %d (class %d): %s", op, rc, cls, err);
    }
    say(rank, msg);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "kill";
    int victim = argc > 2 ? atoi(argv[2]) : 1;
    double seconds = argc > 3 ? atof(argv[3]) : 8;
    int nosend = 0, shrink = 0;
    for (int i = 4; i < argc; i++) {
        nosend |= strcmp(argv[i], "nosend") == 0;
        shrink |= strcmp(argv[i], "shrink") == 0;
    }
    int rank, size, flag;
    MPI_Comm pool;
    MPI_Status st;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_dup(MPI_COMM_WORLD, &pool);
    MPI_Comm_set_errhandler(pool, MPI_ERRORS_RETURN);
    say(rank, "up");

    double start = now();
    if (rank == victim) {
        sleep(1);
        say(rank, mode);
        if (strcmp(mode, "kill") == 0) raise(SIGKILL);
        exit(strcmp(mode, "exit0") == 0 ? 0 : 3);
    }

    int sent = nosend;
    double last = start;
    char *buf = calloc(1 << 20, 1);
    while (now() - start < seconds) {
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, pool, &flag, &st);
        if (rank == 0 && !sent && now() - start >= 2) {
            MPI_Request req;
            int rc = MPI_Isend(buf, 1 << 20, MPI_CHAR, victim, 7, pool, &req);
            describe(rank, "MPI_Isend 1 MiB to the dead rank", rc);
            int done = 0;
            double t0 = now();
            while (rc == MPI_SUCCESS && !done && now() - t0 < 3) {
                rc = MPI_Test(&req, &done, &st);
                usleep(10000);
            }
            if (rc == MPI_SUCCESS && !done) say(rank, "MPI_Test: still pending after 3 s (no error)");
            else describe(rank, "MPI_Test", rc);
            sent = 1;
        }
#ifdef MPIX_ERR_PROC_FAILED
        if (shrink && now() - start >= 3) {
            MPI_Comm smaller;
            int n = 0;
            double t0 = now();
            int rc = MPIX_Comm_shrink(pool, &smaller);
            char msg[128];
            if (rc == MPI_SUCCESS) MPI_Comm_size(smaller, &n);
            snprintf(msg, sizeof msg, "MPIX_Comm_shrink (%.3f s, new size %d)", now() - t0, n);
            describe(rank, msg, rc);
            if (rc == MPI_SUCCESS) describe(rank, "MPI_Barrier on the shrunk communicator", MPI_Barrier(smaller));
            shrink = 0;
        }
#endif
        if (now() - last >= 1) {
            last = now();
            say(rank, "polling");
        }
        usleep(10000);
    }
    say(rank, "alive at end, calling MPI_Finalize");
    MPI_Finalize();
    say(rank, "finalized");
    return 0;
}
