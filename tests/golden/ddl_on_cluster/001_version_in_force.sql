CREATE OR REPLACE FUNCTION tf_version_in_force ON CLUSTER `billing` AS (versions, effective, applies, period_start, at) ->
    if(arrayExists((v, e, a) -> e <= period_start OR (a = 'immediately' AND e <= at), versions, effective, applies),
       arrayMax(arrayFilter((v, e, a) -> e <= period_start OR (a = 'immediately' AND e <= at),
                            versions, effective, applies)),
       arrayMin(versions))
