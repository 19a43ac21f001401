# Reference log-likelihoods from R mclust for bayesmix's EM benchmark grid.
# Run: Rscript benchmarks/mclust_reference.R benchmarks/data benchmarks/mclust_reference.csv \
#        benchmarks/mclust_hclass.csv
# The second table holds mclust's default hierarchical initialisation (hc with modelName
# "VVV" on use = "SVD" data, cut at 2..6 clusters by hclass), which bayesmix's
# init="hierarchical" reproduces (tests/test_em_init.py).
# (R and r-cran-mclust from Debian's packages; never needed by the tests.)
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(args) >= 1) args[1] else "benchmarks/data"
out <- if (length(args) >= 2) args[2] else "benchmarks/mclust_reference.csv"
hout <- if (length(args) >= 3) args[3] else "benchmarks/mclust_hclass.csv"
hrows <- list()
models <- c(spherical = "VII", diag = "VVI", full = "VVV", tied = "EEE")
rows <- list()
for (f in sort(list.files(data_dir, pattern = "\\.csv$"))) {
  X <- as.matrix(read.csv(file.path(data_dir, f)))
  name <- sub("\\.csv$", "", f)
  cl <- hclass(hc(X, modelName = mclust.options("hcModelName"), use = mclust.options("hcUse")), 2:6)
  colnames(cl) <- paste0("k", 2:6)
  hrows[[name]] <- data.frame(dataset = name, row = seq_len(nrow(X)), cl)
  for (cov in names(models)) {
    for (k in 1:6) {
      fit <- tryCatch(Mclust(X, G = k, modelNames = models[[cov]], verbose = FALSE),
                      error = function(e) NULL)
      ll <- if (is.null(fit)) NA else fit$loglik
      bic <- if (is.null(fit)) NA else -fit$bic  # bayesmix: lower is better
      rows[[length(rows) + 1]] <- data.frame(dataset = name, covariance = cov,
        mclust_model = models[[cov]], k = k, n_obs = nrow(X), n_features = ncol(X),
        loglik = ll, bic = bic)
    }
  }
}
tab <- do.call(rbind, rows)
tab$mclust_version <- as.character(packageVersion("mclust"))
tab$r_version <- paste(R.version$major, R.version$minor, sep = ".")
write.csv(tab, out, row.names = FALSE)
write.csv(do.call(rbind, hrows), hout, row.names = FALSE)
cat(sprintf("%d fits, %d NA, mclust %s\n", nrow(tab), sum(is.na(tab$loglik)),
            as.character(packageVersion("mclust"))))
