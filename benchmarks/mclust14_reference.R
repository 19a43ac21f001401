# Reference fits from R mclust for all 14 of its covariance models, ML and MAP.
# Run: Rscript benchmarks/mclust14_reference.R benchmarks/data benchmarks/mclust14_reference.csv \
#        benchmarks/mclust_default_prior.csv
# First table: one row per data set x fit ("ml": Mclust's defaults; "map": the same with
# prior = priorControl(), i.e. mclust's defaultPrior) x model x K = 1..5, with loglik, df,
# bic and icl (both negated: lower is better, as in benchmarks/mclust_reference.csv),
# nVarParams(model, d, K), and a note: "" when the fit is ok, else why it is NA (mclust
# 6.0.0 has no prior for EVE/VEE/VVE/EVV; otherwise mclustBIC's returnCode and the EM run's
# warnings, or else what Mclust said); warnings of fits that did return are kept too.
# Second table: the hyperparameters of defaultPrior(X, G = 3, modelName = m) for m in
# VII/VVI/VVV (vectors and the scale matrix, row-major, as ';'-separated strings).
# (R and r-cran-mclust from Debian's packages; never needed by the tests.)
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
data_dir <- if (length(args) >= 1) args[1] else "benchmarks/data"
out <- if (length(args) >= 2) args[2] else "benchmarks/mclust14_reference.csv"
pout <- if (length(args) >= 3) args[3] else "benchmarks/mclust_default_prior.csv"
models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE",
            "EEV", "VEV", "EVV", "VVV")
prior_models <- c("VII", "VVI", "VVV")
num <- function(x) paste(sprintf("%.15g", as.vector(x)), collapse = ";")
clean <- function(s) gsub("[\r\n\"]+", " ", trimws(s))
# Mclust's result (or NULL) with the messages of its errors and warnings
fit_one <- function(X, k, m, prior) {
  msgs <- character(0)
  fit <- withCallingHandlers(
    tryCatch(if (prior) Mclust(X, G = k, modelNames = m, prior = priorControl(), verbose = FALSE)
             else Mclust(X, G = k, modelNames = m, verbose = FALSE),
             error = function(e) { msgs <<- c(msgs, paste("error:", conditionMessage(e))); NULL }),
    warning = function(w) {
      msgs <<- c(msgs, paste("warning:", conditionMessage(w)))
      invokeRestart("muffleWarning")
    })
  list(fit = fit, note = clean(paste(unique(msgs), collapse = " | ")))
}
# why Mclust gave no fit: the models mclustBIC drops under a prior, else mclustBIC's
# returnCode and the warnings of its EM run (warn = TRUE), or else what Mclust said
why_null <- function(X, k, m, prior, note) {
  if (prior && m %in% c("EVE", "VEE", "VVE", "EVV"))
    return(clean(paste0("no prior for ", m, " in mclust (mclustBIC drops it; Mclust ",
                        note, ")")))
  msgs <- character(0)
  b <- withCallingHandlers(
    tryCatch(mclustBIC(X, G = k, modelNames = m, prior = if (prior) priorControl() else NULL,
                       warn = TRUE, verbose = FALSE),
             error = function(e) { msgs <<- c(msgs, conditionMessage(e)); NULL }),
    warning = function(w) { msgs <<- c(msgs, conditionMessage(w)); invokeRestart("muffleWarning") })
  rc <- if (is.null(b)) NA else attr(b, "returnCodes")[1, 1]
  msgs <- setdiff(unique(msgs), sub("^warning: ", "", note))
  clean(paste0("Mclust returned NULL: BIC NA, returnCode ", rc,
               if (length(msgs)) paste0(" (", paste(msgs, collapse = "; "), ")")
               else if (note != "") paste0(" | Mclust ", note) else ""))
}
rows <- list()
prows <- list()
t0 <- proc.time()[["elapsed"]]
for (f in sort(list.files(data_dir, pattern = "\\.csv$"))) {
  X <- as.matrix(read.csv(file.path(data_dir, f)))
  name <- sub("\\.csv$", "", f)
  n <- nrow(X)
  d <- ncol(X)
  for (m in prior_models) {
    p <- defaultPrior(X, G = 3, modelName = m)
    s <- as.matrix(p$scale)
    prows[[length(prows) + 1]] <- data.frame(dataset = name, model = m, G = 3,
      n_obs = n, n_features = d, shrinkage = p$shrinkage, dof = p$dof,
      mean = num(p$mean), scale_nrow = nrow(s), scale_ncol = ncol(s), scale = num(t(s)))
  }
  for (fit_type in c("ml", "map")) {
    for (m in models) {
      for (k in 1:5) {
        r <- fit_one(X, k, m, prior = fit_type == "map")
        fit <- r$fit
        note <- r$note
        if (is.null(fit)) note <- why_null(X, k, m, fit_type == "map", note)
        iclv <- if (is.null(fit)) NA else tryCatch(-icl(fit), error = function(e) {
          note <<- clean(paste(note, "| icl error:", conditionMessage(e))); NA })
        rows[[length(rows) + 1]] <- data.frame(dataset = name, fit = fit_type, model = m,
          k = k, n_obs = n, n_features = d,
          loglik = if (is.null(fit)) NA else fit$loglik,
          df = if (is.null(fit)) NA else fit$df,
          bic = if (is.null(fit)) NA else -fit$bic,  # bayesmix: lower is better
          icl = iclv,
          n_var_params = nVarParams(m, d, k), note = note)
      }
    }
  }
}
elapsed <- proc.time()[["elapsed"]] - t0
tab <- do.call(rbind, rows)
tab$mclust_version <- as.character(packageVersion("mclust"))
tab$r_version <- paste(R.version$major, R.version$minor, sep = ".")
ptab <- do.call(rbind, prows)
ptab$mclust_version <- as.character(packageVersion("mclust"))
ptab$r_version <- paste(R.version$major, R.version$minor, sep = ".")
write.csv(tab, out, row.names = FALSE)
write.csv(ptab, pout, row.names = FALSE)
cat(sprintf("%d fits (%d NA: ml %d, map %d), %d prior rows, mclust %s, R %s, %.1f s\n",
            nrow(tab), sum(is.na(tab$loglik)), sum(is.na(tab$loglik) & tab$fit == "ml"),
            sum(is.na(tab$loglik) & tab$fit == "map"), nrow(ptab),
            as.character(packageVersion("mclust")), tab$r_version[1], elapsed))
