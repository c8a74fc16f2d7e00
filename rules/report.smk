# What Snakemake's report shows of a run beyond its defaults and the
# workflow's description (report/workflow.rst): rule run_report's tables and
# figures. Not a target of a normal run, so it costs a normal run nothing:
#   snakemake run_report --report report.html --report-after-run
if not IN_MODULE:  # else it would become the including workflow's description
    workflow.report("../report/workflow.rst")


rule run_report:
    """The run's summary as tables, and figures of its buckets and jobs."""
    input:
        SPEC.destination.for_snakemake(SPEC.outputs) if VERDICT.current else RECEIPT,
    output:
        summary=report_file("summary.html", "summary"),
        bucket_sizes=report_file("bucket_sizes.svg", "bucket_sizes"),
        job_memory=report_file("job_memory.svg", "job_memory"),
        throughput=report_file("stage_throughput.svg", "stage_throughput"),
    log:
        log_path("run_report"),
    localrule: True
    conda:
        "../envs/snakeshuf.yaml"
    params:
        # gather writes it beside the outputs (it is not one of its outputs).
        summary=RUN_FILES.summary,
        logs=job_logs,
        memory_mb=config["memory_mb"],
    script:
        "../scripts/run_report.py"
